"""The models: the article's DCGAN, its grouped (batched per-class) form, the SSL discriminator, the secondary
classifier."""

from .classifier import SmallResNet, build_classifier, check_classifier_name, classifier_names
from .dcgan import Discriminator, DownBlock, Generator, UpBlock, init_weights
from .grouped import GroupedLinear, pack_states, unpack_states
from .routing import PerClassDiscriminator, PerClassGenerator, route_by_class
from .ssl import (
    SSLConvDiscriminator,
    SSLGan,
    SSLMLPDiscriminator,
    SSLMLPGenerator,
    build_ssl_discriminator,
    data_dependent_init,
)

__all__ = [
    "Discriminator",
    "DownBlock",
    "Generator",
    "GroupedLinear",
    "PerClassDiscriminator",
    "PerClassGenerator",
    "SSLConvDiscriminator",
    "SSLGan",
    "SSLMLPDiscriminator",
    "SSLMLPGenerator",
    "SmallResNet",
    "UpBlock",
    "build_classifier",
    "build_ssl_discriminator",
    "check_classifier_name",
    "classifier_names",
    "data_dependent_init",
    "init_weights",
    "pack_states",
    "route_by_class",
    "unpack_states",
]
