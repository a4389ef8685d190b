"""Service settings from the environment (names are a contract with hospital IT).

Secrets have no usable default outside development: the service refuses to start in acceptance or
production without a pseudonym key, rather than writing audit rows that anyone could re-identify.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cds_service.paths import data_dir, hooks_dir, models_dir

DEVELOPMENT_PSEUDONYM_KEY = "development-only-pseudonym-key-not-secret"


class Environment(StrEnum):
    development = "development"
    acceptance = "acceptance"
    production = "production"


def _default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'cds.sqlite3'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDS_", extra="ignore")

    database_url: str = Field(default_factory=_default_database_url)
    environment: Environment = Environment.development
    public_base_url: str = "http://127.0.0.1:8000"
    pseudonym_key: str | None = None
    trusted_issuers: Path | None = None
    auth_disabled: bool = False
    jwt_leeway_seconds: int = 60
    jwt_max_lifetime_seconds: int = 3600
    jwks_min_refresh_seconds: float = 30.0
    cors_origins: str = ""
    deployment_refresh_seconds: float = 5.0
    monitor_interval_seconds: float = 0.0  # > 0: run the monitor inside the service
    # Dashboard sign-in (OpenID Connect); the role claim/value grants the quality-team view.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    dashboard_role_claim: str = "groups"
    dashboard_role_value: str = "quality-team"
    dashboard_dev_user: str | None = None
    session_lifetime_seconds: int = 8 * 3600
    cookie_secure: bool = False
    # SMART App Launch (EHR launch) of the detail app linked from the cards.
    smart_client_id: str = "cds-risk-smart-app"
    smart_client_secret: str | None = None
    smart_scopes: str = (
        "launch openid fhirUser patient/Patient.read patient/Observation.read "
        "patient/Encounter.read patient/Condition.read"
    )
    allow_simulated_time: bool = False
    hooks_dir: Path = Field(default_factory=hooks_dir)
    models_dir: Path = Field(default_factory=models_dir)
    spool_dir: Path = Field(default_factory=lambda: data_dir() / "spool")
    fhir_timeout_seconds: float = 3.0  # one request (connect, read ...)
    # One deadline for all FHIR fallback fetches of a call, retries included (per hook:
    # fhir_budget_seconds in the hook definition).
    fhir_budget_seconds: float = Field(default=2.0, gt=0)
    fhir_max_pages: int = 10
    fhir_max_resources: int = 5000
    fhir_retries: int = 2
    max_body_bytes: int = 5 * 1024 * 1024
    spool_replay_seconds: float = 5.0
    # Longest a call waits for the audit write or the jti check before spooling / using memory.
    audit_budget_ms: int = Field(default=200, gt=0)
    # Run the migrations at start-up; by default only in development (elsewhere the deployment
    # runs `cds-service db upgrade` as its own step, so a worker can start without the database).
    migrate_on_start: bool | None = None
    top_factors: int = 5
    # A hospital's local codes (FHIR ConceptMap/ValueSet JSON files); docs/terminology-site.md.
    site_terminology_dir: Path | None = None
    # Who the deployment trail names for changes the service records itself (default: the
    # process user), e.g. a change of site terminology.
    operator: str | None = None
    # Log lines: "console" (one readable line) or "json" (for log collectors); by default
    # console in development and JSON elsewhere.
    log_format: Literal["console", "json"] | None = None
    # The language of card texts (hooks/*.toml [card.<language>], card_phrases.toml) and the time
    # zone card times are shown in: docs/hook-definitions.md.
    language: Literal["en", "nl"] = "en"
    display_timezone: str = "Europe/Amsterdam"

    @field_validator("display_timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"CDS_DISPLAY_TIMEZONE {value!r} is not an IANA time zone") from None
        return value

    # Retention in days per audit table, as JSON ({"card_audit": 365}); unset tables keep the
    # defaults of cds_service/db/retention.py (card audit 184 days, the least it may be).
    retention_days: dict[str, int] = Field(default_factory=dict)
    # Where `cds-service audit purge` writes the Parquet archive of what it purges.
    archive_dir: Path = Field(default_factory=lambda: data_dir() / "archive")
    # Small-cell suppression: a figure computed from fewer than this many cards or patients is
    # withheld from every output that leaves the database (docs/monitoring.md).
    small_cell_min: int = Field(default=10, ge=1)
    # A TOML file of site-configured subgroups for `cds-service fairness` (beside sex and age
    # band; format in cds_service/monitoring/site_subgroups.py and docs/monitoring.md).
    fairness_subgroups_file: Path | None = None

    @field_validator("site_terminology_dir", mode="before")
    @classmethod
    def _empty_is_no_folder(cls, value: object) -> object:
        """CDS_SITE_TERMINOLOGY_DIR= (empty) means none, never the working directory."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _secrets_outside_development(self) -> Settings:
        if self.environment is not Environment.development:
            if not self.pseudonym_key or self.pseudonym_key == DEVELOPMENT_PSEUDONYM_KEY:
                raise ValueError(
                    f"CDS_PSEUDONYM_KEY must be set to a secret in {self.environment.value}"
                )
            if len(self.pseudonym_key) < 16:
                raise ValueError("CDS_PSEUDONYM_KEY must be at least 16 characters")
            if self.dashboard_dev_user:
                raise ValueError("CDS_DASHBOARD_DEV_USER is only allowed in development")
            if self.allow_simulated_time:
                raise ValueError("CDS_ALLOW_SIMULATED_TIME is only allowed in development")
            if self.auth_disabled:
                env = self.environment.value
                raise ValueError(f"CDS_AUTH_DISABLED is only allowed in development, not {env}")
            if self.trusted_issuers is None or not self.trusted_issuers.is_file():
                raise ValueError(
                    f"CDS_TRUSTED_ISSUERS must name an existing trusted-callers file in "
                    f"{self.environment.value}"
                )
        self.public_base_url = self.public_base_url.rstrip("/")
        return self

    @property
    def trusted_issuers_path(self) -> Path:
        """In development the quick-start file (`cds-service keys init`) is the default."""
        return self.trusted_issuers or data_dir() / "trusted-callers.json"

    @property
    def run_migrations_on_start(self) -> bool:
        if self.migrate_on_start is not None:
            return self.migrate_on_start
        return self.environment is Environment.development

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @property
    def effective_log_format(self) -> str:
        if self.log_format is not None:
            return self.log_format
        return "console" if self.environment is Environment.development else "json"

    @property
    def effective_pseudonym_key(self) -> bytes:
        return (self.pseudonym_key or DEVELOPMENT_PSEUDONYM_KEY).encode()
