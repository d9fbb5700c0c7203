"""A tiny recipe for the study tests: a linear autoencoder on procedural dSprites max-pooled to 16 x 16
(the common method surface: ``loss``, ``encode``, ``reconstruct``, save/load), registered as
``test/tiny-ae``, plus helpers that write study files.

``CRASH["at"]``: when set to a step, the model's loss raises there (a simulated crash mid-training);
``CRASH["weight"]``: only in models of that ``weight``. A test module that sets it uses the
``crash_switch_off`` fixture.
"""

import dataclasses
import json
from typing import Annotated

import pytest
import torch
import yaml

from diffrep.config import Config, Ge
from diffrep.nn import PretrainedMixin
from diffrep.nn.pretrained import register_model
from diffrep.recipes import register_recipe
from diffrep.recipes.runinfo import DataRoot, load_named
from diffrep.data.pooled import Pooled
from diffrep.train import TrainConfig

CRASH = {"at": None, "weight": None}


@pytest.fixture
def crash_switch_off():
    """Every test of a module that imports this fixture and names it in ``pytestmark =
    pytest.mark.usefixtures(crash_switch_off.__name__)`` starts and ends with ``CRASH`` off, whatever a test
    set. Here rather than in a conftest.py: tests/ has exactly one (tests/contract/test_contract_issue_16.py)."""
    CRASH.update(at=None, weight=None)
    yield
    CRASH.update(at=None, weight=None)


def quiet(_msg):
    """A study log that prints nothing (``run_study(..., log=quiet)``)."""


def read_jsonl(path):
    """The records of a JSON-lines file (a run's ``metrics.jsonl``), blank lines skipped."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclasses.dataclass
class StudyTinyAEConfig(Config):
    image_size: Annotated[int, Ge(1)] = 16
    latent_dim: Annotated[int, Ge(1)] = 3
    weight: float = 1.0  # scales the loss: a grid parameter that changes nothing but the hash


@register_model
class StudyTinyAE(PretrainedMixin, torch.nn.Module):
    config_class = StudyTinyAEConfig

    def __init__(self, config: StudyTinyAEConfig):
        super().__init__()
        self.config = config
        d = config.image_size ** 2
        self.enc = torch.nn.Linear(d, config.latent_dim)
        self.dec = torch.nn.Linear(config.latent_dim, d)

    def encode(self, x):
        return self.enc(x.reshape(len(x), -1))

    def reconstruct(self, x):
        return self.dec(self.encode(x)).reshape(x.shape)

    def loss(self, batch, *, step, generator=None):
        if CRASH["at"] is not None and step == CRASH["at"] and CRASH["weight"] in (None, self.config.weight):
            raise RuntimeError(f"simulated crash at step {step}")
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        recon = (self.reconstruct(x) - x).pow(2).mean()
        return {"loss": self.config.weight * recon, "recon": recon.detach()}


@dataclasses.dataclass
class StudyTinyRecipeConfig(Config):
    model: StudyTinyAEConfig = dataclasses.field(default_factory=StudyTinyAEConfig)
    dataset: str = "dsprites"
    dataset_options: dict = dataclasses.field(default_factory=dict)
    pool: Annotated[int, Ge(1)] = 4
    data: DataRoot = dataclasses.field(default_factory=DataRoot)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        steps=3, batch_size=4, lr=1e-2, ema_decay=0.0, log_every=1, ckpt_every=1, keep_checkpoints=10,
        device="cpu"))


def _build(cfg):
    ds = load_named(cfg.dataset, cfg.dataset_options, cfg.data)
    return StudyTinyAE(cfg.model), (Pooled(ds, cfg.pool) if cfg.pool > 1 else ds)


register_recipe("test/study-tiny-ae", StudyTinyRecipeConfig, _build, "study tests: linear AE on dSprites 16 px",
                cpu_friendly=True)
RECIPE = "test/study-tiny-ae"


def study_dict(**over) -> dict:
    """A 2 (weights) x 2 (seeds) study of the tiny recipe that trains 3 steps and measures nothing."""
    d = {"study": "tiny", "seeds": [0, 1], "steps": 3,
         "methods": {"ae": {"recipe": RECIPE, "grid": {"model.weight": [1.0, 2.0]}}},
         "eval": {"metrics": []}}
    d.update(over)
    return d


def write_study(path, **over):
    path.write_text(yaml.safe_dump(study_dict(**over), sort_keys=False), encoding="utf-8")
    return path


# eval.calibrate: a model whose codes are centred by a fitted mean (test_study_methods, test_study_eval_weights)
@register_model
class StudyCenteredAE(StudyTinyAE):
    config_class = StudyTinyAE.config_class

    def __init__(self, config):
        super().__init__(config)
        self.register_buffer("center", torch.zeros(config.latent_dim))

    def fit_center(self, x):
        self.center.copy_(super().encode(x).mean(0))

    def encode(self, x):
        return super().encode(x) - self.center


def _build_centered(cfg):
    model, ds = _build(cfg)
    centered = StudyCenteredAE(cfg.model)
    centered.load_state_dict({**model.state_dict(), "center": torch.zeros(cfg.model.latent_dim)})
    return centered, ds


register_recipe("test/study-centered-ae", StudyTinyRecipeConfig, _build_centered, "study tests: fitted code centre",
                cpu_friendly=True)
