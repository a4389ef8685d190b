"""Reports generated from SQL for the quality team and the regulator: the post-market
surveillance report (HTML, printed to PDF by headless Chromium) against each model's PMS plan
(``models/<model>/pms.toml``), and the machine-readable applied model card (CHAI schema, JSON).

Every figure passes the small-cell rule (monitoring/suppression.py) before it is written.
"""

from cds_service.reports.model_card import AppliedModelCard, applied_model_card
from cds_service.reports.pdf import print_pdf, screenshot
from cds_service.reports.plan import PmsPlan, PmsPlanError, load_plan
from cds_service.reports.pms_data import PmsData, collect
from cds_service.reports.pms_html import render_html

__all__ = [
    "AppliedModelCard",
    "PmsData",
    "PmsPlan",
    "PmsPlanError",
    "applied_model_card",
    "collect",
    "load_plan",
    "print_pdf",
    "render_html",
    "screenshot",
]
