from .sami import SAMI, SAMIConfig  # noqa: F401
from .paramrel import ParamReL, ParamReLConfig  # noqa: F401
