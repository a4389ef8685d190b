"""SMART on FHIR app (EHR launch, ``/smart``) opened from the risk card's link, or from the EHR's
app menu without a card: the risk recomputed from the EHR's current data, its factors, trends and
missing inputs, and the clinician's accept or dismiss.

Public API: ``router`` (mounted by the app factory; it includes the feedback route).
Inside: ``routes`` (launch, callback, app page), ``feedback`` (the response form), ``session``
(the launch's server-side session), ``flow`` (SMART App Launch protocol, sealed token and
context), ``identity`` (who answers, as a pseudonym), ``launch_audit`` (the audit row of a launch
without a card), ``view`` (FHIR data and scoring), ``page`` and ``charts`` (HTML and SVG).
"""

from cds_service.web.smart.routes import router

__all__ = ["router"]
