"""The try-it page (development only): a synthetic patient, a signed call from the browser, the
card as an EHR renders it beside the raw request and response, and a local SMART launch."""

from fastapi import APIRouter

from cds_service.web.tryit import ehr, routes

__all__ = ["router"]

router = APIRouter()
router.include_router(routes.router)
router.include_router(ehr.router)
