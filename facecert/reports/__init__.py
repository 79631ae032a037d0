"""Reports shared by every tap: JSON summary, JUnit XML, console table."""

from facecert.reports.junit import write_junit
from facecert.reports.summary import summarize, write_summary

__all__ = ["summarize", "write_junit", "write_summary"]
