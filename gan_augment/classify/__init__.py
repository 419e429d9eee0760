"""Few labels, many unlabeled images: a classifier from a GAN (``classify``) and its predictions (``Predictor``)."""

from .predict import Predictor, predict_folder
from .train import CLASSIFIER_NAME, METHODS, classify, train_features_classifier

__all__ = ["CLASSIFIER_NAME", "METHODS", "Predictor", "classify", "predict_folder", "train_features_classifier"]
