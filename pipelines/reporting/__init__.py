"""Reporting: drift (Evidently), the accuracy pages and the front page."""
