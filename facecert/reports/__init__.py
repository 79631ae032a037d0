"""Reports shared by every tap: JSON summary, JUnit XML, console table."""

from facecert.reports.summary import summarize, write_summary
from facecert.reports.junit import write_junit

__all__ = ["summarize", "write_junit", "write_summary"]
