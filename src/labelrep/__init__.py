"""labelrep: label representations for image classification."""
from .errors import NonFiniteLossError, UserError
from .labels import LabelSpace, create_label_space, list_label_spaces
from .models import create_encoder, create_model, list_encoders
from .data import load_dataset, list_datasets
from .train import train
from .run import load_run

__version__ = "0.1.0"

__all__ = ["LabelSpace", "NonFiniteLossError", "UserError", "create_encoder", "create_label_space", "create_model",
           "list_datasets", "list_encoders", "list_label_spaces", "load_dataset", "load_run", "train"]
