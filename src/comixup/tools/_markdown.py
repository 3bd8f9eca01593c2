"""The Markdown of a ``comixup bench gpu`` report (:func:`comixup.tools.bench_gpu.bench_gpu`):
a header line, then one table per section with its status, time, peak memory and restored
settings, and its notes."""

from __future__ import annotations

__all__ = ["markdown"]


#: The left-aligned columns of the Markdown tables.
_TEXT_COLUMNS = ("check", "method", "part", "status", "dtype", "error", "reads",
                 "settings_restored")


def _cell(key: str, value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        if key.endswith("max_diff"):
            return "0" if value == 0 else f"{value:.2e}"
        if key == "share":
            return f"{100 * value:.1f}%"
        if key in ("vs_vanilla",):
            return f"{value:.2f}x"
        if key in ("train_loss", "test_loss"):
            return f"{value:.4f}"
        if key.endswith("_per_step"):
            return f"{value:g}"
        if key.endswith("_mib"):
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value).replace("|", "\\|")


def _section_extras(section: dict) -> list[str]:
    """The peak memory of a section and the settings restored after it, for its header line."""
    memory = section.get("memory", {})
    extras = []
    if "peak_allocated_mib" in memory:
        extras.append(f"peak memory {memory['peak_allocated_mib']:.1f} MiB allocated, "
                      f"{memory['peak_reserved_mib']:.1f} MiB reserved")
    elif "peak_rss_mib" in memory:
        scope = " (process peak)" if memory.get("rss_scope") == "process" else ""
        extras.append(f"peak RSS {memory['peak_rss_mib']:.1f} MiB{scope}")
    restored = section.get("settings_restored") or {}
    if restored:
        extras.append("settings restored after it: " + ", ".join(
            f"{k} ({left} -> {saved})" for k, (left, saved) in restored.items()))
    return extras


def markdown(report: dict) -> str:
    """The Markdown of a :func:`bench_gpu` report: a header line, then one table per section
    (its columns that hold a value in some row) with its notes."""
    lines = [f"# comixup bench gpu: {report['device']} ({report['device_name']})"
             f"{', quick' if report['quick'] else ''}",
             "",
             f"torch {report['torch']}, CUDA {report['cuda'] or 'none'}, {report['cpus']} CPUs, "
             f"{report['torch_threads']} torch thread(s); {report.get('seconds', 0):.1f} s in "
             "all.", ""]
    for number, section in enumerate(report["sections"], start=1):
        columns = [(key, header) for key, header in section["columns"]
                   if any(row.get(key) is not None for row in section["rows"])]
        failed = sum(1 for row in section["rows"] if not row.get("ok", True))
        status = ("all ok" if not failed else f"{failed} failed") if "error" not in section \
            else f"**failed**: {section['error']}"
        lines += [f"## {number}. {section['title']}", "",
                  "; ".join([status, f"{section['seconds']:.1f} s",
                             *_section_extras(section)]), ""]
        lines.append("| " + " | ".join(header for _, header in columns) + " |")
        lines.append("| " + " | ".join("---" if key in _TEXT_COLUMNS else "---:"
                                       for key, _ in columns) + " |")
        for row in section["rows"]:
            cells = [_cell(key, row.get(key)) for key, _ in columns]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += [note for note in section["notes"] for note in (note, "")]
    return "\n".join(lines)
