"""Recommenders: MF (the victim) and a popularity baseline.  They know nothing of attacks."""
from apt_core.models.base import Recommender
from apt_core.models.mf import MFConfig, MFModel, MFTrainer, fit_mf, mf_batch_gradients
from apt_core.models.popularity import PopularityModel, fit_popularity

__all__ = ["Recommender", "MFConfig", "MFModel", "MFTrainer", "fit_mf", "mf_batch_gradients", "PopularityModel", "fit_popularity"]
