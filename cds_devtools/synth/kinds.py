"""Measured concepts and the several ways hospitals and devices report each of them."""

from __future__ import annotations

from typing import Final

from cds_devtools.synth.codes import (
    HOME_SYMPTOMS,
    LABORATORY,
    LOCAL_FLOWSHEET,
    LOCAL_LAB,
    SURVEY,
    VITALS,
    loinc,
    make_coding,
)
from cds_devtools.synth.draws import cumulative
from cds_devtools.synth.kind_types import Kind
from cds_devtools.synth.kind_types import unit as _unit

_HR_CODE: Final = ((1.0, (loinc("8867-4", "Heart rate"),)),)
SBP_CODING: Final = loinc("8480-6", "Systolic blood pressure")
DBP_CODING: Final = loinc("8462-4", "Diastolic blood pressure")
BP_PANEL: Final = loinc("85354-9", "Blood pressure panel with all children optional")
_SPO2_CODES: Final = (
    (
        45.0,
        (
            loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
            loinc("2708-6", "Oxygen saturation in Arterial blood"),
        ),
    ),
    (35.0, (loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),)),
    (
        10.0,
        (
            loinc("2708-6", "Oxygen saturation in Arterial blood"),
            loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
        ),
    ),
    (10.0, (loinc("2708-6", "Oxygen saturation in Arterial blood"),)),
)
_WEIGHT_CODES: Final = (
    (85.0, (loinc("29463-7", "Body weight"),)),
    (15.0, (loinc("29463-7", "Body weight"), loinc("3141-9", "Body weight Measured"))),
)
_MGDL: Final = "mg/dL"

HEART_RATE: Final = Kind(
    "Heart rate",
    VITALS,
    cumulative(
        [
            (6, _unit("/min", "beats/minute", _HR_CODE)),
            (3, _unit("/min", "/min", _HR_CODE)),
            (1, _unit("/min", "bpm", _HR_CODE)),
        ]
    ),
    absurd=999,
    local=make_coding(LOCAL_FLOWSHEET, "HF", "Hartfrequentie"),
    p_local=0.15,
)
RESP_RATE: Final = Kind(
    "Respiratory rate",
    VITALS,
    cumulative(
        [
            (8, _unit("/min", "breaths/minute", ((1.0, (loinc("9279-1", "Respiratory rate"),)),))),
            (2, _unit("/min", "/min", ((1.0, (loinc("9279-1", "Respiratory rate"),)),))),
        ]
    ),
    absurd=250,
    local=make_coding(LOCAL_FLOWSHEET, "AF", "Ademfrequentie"),
    p_local=0.15,
)
SYSTOLIC: Final = Kind(
    "Systolic blood pressure",
    VITALS,
    cumulative([(1, _unit("mm[Hg]", "mmHg", ((1.0, (SBP_CODING,)),)))]),
    absurd=999,
)
DIASTOLIC: Final = Kind(
    "Diastolic blood pressure",
    VITALS,
    cumulative([(1, _unit("mm[Hg]", "mmHg", ((1.0, (DBP_CODING,)),)))]),
    absurd=999,
)
# Temperature at the site it was taken, as many flowsheets code it (LOINC, same property).
_TEMP_CODE: Final = (
    (70.0, (loinc("8310-5", "Body temperature"),)),
    (12.0, (loinc("8331-1", "Oral temperature"),)),
    (8.0, (loinc("8333-7", "Tympanic membrane temperature"),)),
    (6.0, (loinc("8328-7", "Axillary temperature"),)),
    (4.0, (loinc("8332-9", "Rectal temperature"),)),
)
TEMPERATURE: Final = Kind(
    "Body temperature",
    VITALS,
    cumulative(
        [
            (70, _unit("Cel", "°C", _TEMP_CODE, decimals=1)),
            (25, _unit("Cel", "Cel", _TEMP_CODE, decimals=1)),
            (5, _unit("[degF]", "°F", _TEMP_CODE, scale=9 / 5, shift=32, decimals=1)),
        ]
    ),
    absurd=99.9,
    local=make_coding(LOCAL_FLOWSHEET, "TEMP", "Temperatuur"),
    p_local=0.15,
)
SPO2: Final = Kind(
    "Oxygen saturation",
    VITALS,
    cumulative([(1, _unit("%", "%", _SPO2_CODES))]),
    absurd=0,
    local=make_coding(LOCAL_FLOWSHEET, "SAT", "Saturatie"),
    p_local=0.15,
    dimensionless=True,
)
WEIGHT: Final = Kind(
    "Body weight",
    VITALS,
    cumulative(
        [
            (95, _unit("kg", "kg", _WEIGHT_CODES, decimals=1)),
            (5, _unit("[lb_av]", "lb", _WEIGHT_CODES, scale=1 / 0.45359237, decimals=1)),
        ]
    ),
    absurd=999,
)
DYSPNEA: Final = Kind(
    "Breathlessness score",
    SURVEY,
    cumulative(
        [
            (
                1,
                _unit(
                    "{score}",
                    "{score}",
                    (
                        (
                            1.0,
                            (
                                make_coding(
                                    HOME_SYMPTOMS, "dyspnea-score", "Breathlessness score (0-10)"
                                ),
                            ),
                        ),
                    ),
                ),
            )
        ]
    ),
    absurd=99,
    dimensionless=True,
)
CRP: Final = Kind(
    "CRP",
    LABORATORY,
    cumulative(
        [
            (
                97,
                _unit(
                    "mg/L",
                    "mg/L",
                    (
                        (
                            1.0,
                            (
                                loinc(
                                    "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma"
                                ),
                            ),
                        ),
                    ),
                ),
            ),
            (
                3,
                _unit(
                    _MGDL,
                    _MGDL,
                    (
                        (
                            1.0,
                            (
                                loinc(
                                    "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma"
                                ),
                            ),
                        ),
                    ),
                    scale=0.1,
                    decimals=2,
                ),
            ),
        ]
    ),
    absurd=99999,
    local=make_coding(LOCAL_LAB, "CRP", "CRP"),
    p_local=0.35,
    p_local_only=0.003,
    censor_below=5.0,
)
LACTATE: Final = Kind(
    "Lactate",
    LABORATORY,
    cumulative(
        [
            (
                92,
                _unit(
                    "mmol/L",
                    "mmol/L",
                    (
                        (60.0, (loinc("2524-7", "Lactate [Moles/volume] in Serum or Plasma"),)),
                        (30.0, (loinc("32693-4", "Lactate [Moles/volume] in Blood"),)),
                        (10.0, (loinc("2518-9", "Lactate [Moles/volume] in Arterial blood"),)),
                    ),
                    decimals=1,
                ),
            ),
            (
                8,
                _unit(
                    _MGDL,
                    _MGDL,
                    ((1.0, (loinc("14118-4", "Lactate [Mass/volume] in Serum or Plasma"),)),),
                    scale=9.008,
                    decimals=0,
                ),
            ),
        ]
    ),
    absurd=999,
    local=make_coding(LOCAL_LAB, "LACT", "Lactaat"),
    p_local=0.35,
    p_local_only=0.003,
)
LEUKOCYTES: Final = Kind(
    "Leukocytes",
    LABORATORY,
    cumulative(
        [
            (
                85,
                _unit(
                    "10*9/L",
                    "10^9/L",
                    (
                        (
                            80.0,
                            (loinc("6690-2", "Leukocytes [#/volume] in Blood by Automated count"),),
                        ),
                        (20.0, (loinc("26464-8", "Leukocytes [#/volume] in Blood"),)),
                    ),
                    decimals=1,
                ),
            ),
            (
                15,
                _unit(
                    "10*3/uL",
                    "10^3/uL",
                    (
                        (
                            1.0,
                            (loinc("6690-2", "Leukocytes [#/volume] in Blood by Automated count"),),
                        ),
                    ),
                    decimals=1,
                ),
            ),
        ]
    ),
    absurd=9999,
    local=make_coding(LOCAL_LAB, "LEUK", "Leukocyten"),
    p_local=0.35,
    p_local_only=0.003,
)
GLUCOSE: Final = Kind(
    "Glucose",
    LABORATORY,
    cumulative(
        [
            (
                80,
                _unit(
                    "mmol/L",
                    "mmol/L",
                    ((1.0, (loinc("14749-6", "Glucose [Moles/volume] in Serum or Plasma"),)),),
                    decimals=1,
                ),
            ),
            # mg/dL = mmol/L x molar mass (180.156 g/mol) / 10, the factor the feature spec uses.
            (
                10,
                _unit(
                    _MGDL,
                    _MGDL,
                    ((1.0, (loinc("2345-7", "Glucose [Mass/volume] in Serum or Plasma"),)),),
                    scale=18.0156,
                    decimals=0,
                ),
            ),
            # Whole blood (blood gas analysers, point of care): the code US systems send most.
            (
                10,
                _unit(
                    _MGDL,
                    _MGDL,
                    ((1.0, (loinc("2339-0", "Glucose [Mass/volume] in Blood"),)),),
                    scale=18.0156,
                    decimals=0,
                ),
            ),
        ]
    ),
    absurd=9999,
    local=make_coding(LOCAL_LAB, "GLUC", "Glucose"),
    p_local=0.35,
    p_local_only=0.003,
)
CREATININE: Final = Kind(
    "Creatinine",
    LABORATORY,
    cumulative(
        [
            (
                80,
                _unit(
                    "umol/L",
                    "µmol/L",
                    ((1.0, (loinc("14682-9", "Creatinine [Moles/volume] in Serum or Plasma"),)),),
                    decimals=0,
                ),
            ),
            # mg/dL = umol/L x 113.12 g/mol / 10000 (i.e. / 88.40), matching the spec's molar mass.
            (
                10,
                _unit(
                    _MGDL,
                    _MGDL,
                    ((1.0, (loinc("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),)),),
                    scale=0.011312,
                    decimals=2,
                ),
            ),
            (
                10,
                _unit(
                    _MGDL,
                    _MGDL,
                    ((1.0, (loinc("38483-4", "Creatinine [Mass/volume] in Blood"),)),),
                    scale=0.011312,
                    decimals=2,
                ),
            ),
        ]
    ),
    absurd=99999,
    local=make_coding(LOCAL_LAB, "KREA", "Kreatinine"),
    p_local=0.35,
    p_local_only=0.003,
)
