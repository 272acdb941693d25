"""jaxloss: classification losses for JAX, exact against PyTorch, Keras and optax."""

from ._binary import asymmetric_loss as asymmetric_loss
from ._binary import binary_cross_entropy as binary_cross_entropy
from ._binary import binary_focal_loss as binary_focal_loss
from ._binary import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from ._binary import sigmoid_focal_loss as sigmoid_focal_loss
from ._common import checked as checked
from ._linear import linear_softmax_cross_entropy as linear_softmax_cross_entropy
from ._margin import hinge_loss as hinge_loss
from ._margin import multi_margin_loss as multi_margin_loss
from ._margin import multiclass_hinge_loss as multiclass_hinge_loss
from ._margin import multiclass_perceptron_loss as multiclass_perceptron_loss
from ._margin import multiclass_sparsemax_loss as multiclass_sparsemax_loss
from ._margin import perceptron_loss as perceptron_loss
from ._margin import squared_hinge_loss as squared_hinge_loss
from ._overlap import dice_loss as dice_loss
from ._overlap import tversky_loss as tversky_loss
from ._pairwise import sigmoid_pairwise_loss as sigmoid_pairwise_loss
from ._pairwise import softmax_pairwise_loss as softmax_pairwise_loss
from ._priors import class_weights_from_counts as class_weights_from_counts
from ._priors import pos_weight_from_counts as pos_weight_from_counts
from ._softmax import categorical_cross_entropy as categorical_cross_entropy
from ._softmax import kl_divergence as kl_divergence
from ._softmax import kl_divergence_with_log_targets as kl_divergence_with_log_targets
from ._softmax import nll_loss as nll_loss
from ._softmax import poly_loss_cross_entropy as poly_loss_cross_entropy
from ._softmax import (
    poly_loss_cross_entropy_with_integer_labels as poly_loss_cross_entropy_with_integer_labels,
)
from ._softmax import softmax_cross_entropy as softmax_cross_entropy
from ._softmax import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from ._softmax import softmax_focal_loss as softmax_focal_loss
from ._softmax import (
    softmax_focal_loss_with_integer_labels as softmax_focal_loss_with_integer_labels,
)
from ._softmax import softmax_kl_divergence as softmax_kl_divergence

__version__ = "0.1.0"

__all__ = [
    "asymmetric_loss",
    "binary_cross_entropy",
    "binary_focal_loss",
    "categorical_cross_entropy",
    "checked",
    "dice_loss",
    "class_weights_from_counts",
    "hinge_loss",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "linear_softmax_cross_entropy",
    "multi_margin_loss",
    "multiclass_hinge_loss",
    "multiclass_perceptron_loss",
    "multiclass_sparsemax_loss",
    "nll_loss",
    "perceptron_loss",
    "poly_loss_cross_entropy",
    "poly_loss_cross_entropy_with_integer_labels",
    "pos_weight_from_counts",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "sigmoid_pairwise_loss",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "softmax_focal_loss",
    "softmax_focal_loss_with_integer_labels",
    "softmax_kl_divergence",
    "softmax_pairwise_loss",
    "squared_hinge_loss",
    "tversky_loss",
]
