"""Actions: one module per action, each registered by name with its schema and the S3 requests it makes.

Example:
    >>> from chalicelib.actions import REGISTRY
    >>> REGISTRY["storage_class"].model_validate("onezone_ia").storage_class
    'ONEZONE_IA'
"""

from chalicelib.actions.base import REGISTRY, Action, register
from chalicelib.actions.convert import Convert
from chalicelib.actions.intelligent_tiering import IntelligentTiering
from chalicelib.actions.lifecycle import Expire, Transition, TransitionStep
from chalicelib.actions.recompress import Recompress
from chalicelib.actions.storage_class import StorageClass

__all__ = ["REGISTRY", "Action", "register", "Convert", "Recompress", "StorageClass", "Transition", "TransitionStep", "Expire",
           "IntelligentTiering"]
