"""The CHAI Applied Model Card, schema v0.2 (https://mc.chai.org/v0.2/schema.xsd, repository
coalition-for-health-ai/mc-schema), as pydantic models: one class per XSD complex type (same
name), one field per element, JSON keys spelled as the XSD's element names. Optional XSD elements
(minOccurs="0") are optional here and left out of the JSON when empty; the XML signature
element is not produced. ``extra="forbid"`` makes a misspelt key a validation error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SCHEMA_URL",
    "SCHEMA_VERSION",
    "AISystemFactsType",
    "AppliedModelCard",
    "BasicInfoType",
    "EHRCompatibilityType",
    "KeyMetricType",
    "KeyMetricsType",
    "MetricResultType",
    "ModelSummaryType",
    "ReleaseInfoType",
    "ResourcesType",
    "TransparencyInformationType",
    "TrustIngredientsType",
    "UsesAndDirectionsType",
    "WarningsType",
]

SCHEMA_VERSION = "v0.2"
SCHEMA_URL = "https://mc.chai.org/v0.2/schema.xsd"


class _Type(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BasicInfoType(_Type):
    ModelName: str
    ModelDeveloper: str
    DeveloperContact: str


class EHRCompatibilityType(_Type):
    EHR: list[str] = Field(default_factory=list)


class ReleaseInfoType(_Type):
    ReleaseStage: str
    ReleaseDate: str
    ReleaseVersion: str
    GlobalAvailability: str
    EHRCompatibility: EHRCompatibilityType | None = None
    RegulatoryApproval: str | None = None


class ModelSummaryType(_Type):
    Summary: str
    Keywords: list[str]


class UsesAndDirectionsType(_Type):
    IntendedUseAndWorkflow: str
    PrimaryIntendedUsers: str
    HowToUse: str
    TargetedPatientPopulation: str
    CautionedOutOfScopeSettings: str


class WarningsType(_Type):
    KnownRisksAndLimitations: str
    KnownBiasesOrEthicalConsiderations: str
    ClinicalRiskLevel: str


class AISystemFactsType(_Type):
    OutcomesAndOutputs: str
    ModelType: str
    FoundationModels: str | None = None
    InputDataSource: str
    OutputAndInputDataTypes: str
    DevelopmentDataCharacterization: str
    BiasMitigationApproaches: str
    OngoingMaintenance: str
    Security: str | None = None
    Transparency: str | None = None


class TransparencyInformationType(_Type):
    FundingSource: str
    ThirdPartyInformation: str | None = None
    StakeholdersConsulted: str


class TrustIngredientsType(_Type):
    AISystemFacts: AISystemFactsType
    TransparencyInformation: TransparencyInformationType


class MetricResultType(_Type):
    Label: str
    ValueJson: str  # a JSON document as a string, as in the XSD


class KeyMetricType(_Type):
    MetricGoal: str
    Results: list[MetricResultType] = Field(min_length=1)
    Interpretation: str
    TestType: str
    TestingDataDescription: str
    ValidationProcessAndJustification: str


class KeyMetricsType(_Type):
    UsefulnessUsabilityEfficacy: KeyMetricType
    FairnessEquity: KeyMetricType
    SafetyReliability: KeyMetricType


class ResourcesType(_Type):
    EvaluationReferences: str | None = None
    ClinicalTrial: str | None = None
    PeerReviewedPublications: str
    ReimbursementStatus: str | None = None
    PatientConsentOrDisclosure: str


class AppliedModelCard(_Type):
    BasicInfo: BasicInfoType
    ReleaseInfo: ReleaseInfoType
    ModelSummary: ModelSummaryType
    UsesAndDirections: UsesAndDirectionsType
    Warnings: WarningsType
    TrustIngredients: TrustIngredientsType
    KeyMetrics: KeyMetricsType
    Resources: ResourcesType
    Bibliography: str
