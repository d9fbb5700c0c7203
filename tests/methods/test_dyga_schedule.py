"""The DyGA anchor-refit schedule shared by EncDiff and DisDiff (DyGA App. C.1.1, Alg. 1; docs/methods/dyga.md#schedule):
which steps refit, with which epoch and on how many images, written out by hand for given steps per epoch and r,
through a resume, repeated micro-batch calls, eval mode and compat's fit before training; its input checks; the
recipes' arguments; DisDiff under compat (the schedule and fit data it shares with EncDiff)."""

from __future__ import annotations

import pytest
import torch

from diffrep.methods.dyga import DyGAConfig
from diffrep.methods.dyga_schedule import AnchorData, AnchorSchedule, Refit, recipe_anchor_data

DATA = [torch.zeros(3, 4, 4)] * 10


def cfg(**kw):
    return DyGAConfig(**{"num_units": 2, "token_dim": 2, "n_components": 2, **kw})


def run(sched, steps, *, fitted=False, training=True):
    """The fits ``sched`` runs over the calls at ``steps`` (in order): [(step, Refit)]."""
    done = []
    for s in steps:
        sched(s, fitted=fitted, training=training, refit=lambda f, s=s: done.append((s, f)))
    return done


def test_paper_mode_refits_at_the_end_of_every_r_th_epoch():
    # 3 steps per epoch, r = 2: steps 6, 12, 18 start epochs 3, 5, 7 (2, 4, 6 epochs done); nothing at step 0
    assert run(AnchorSchedule(cfg(refresh_every=2), 3), range(20)) == [
        (6, Refit(2)), (12, Refit(4)), (18, Refit(6))]
    # r = 1, 4 steps per epoch: steps 4, 8 (epochs done 1, 2)
    assert run(AnchorSchedule(cfg(), 4), range(10)) == [(4, Refit(1)), (8, Refit(2))]
    # r = 5 (Cars3D), 1 step per epoch (a dataset no larger than a batch): steps 5, 10
    assert run(AnchorSchedule(cfg(refresh_every=5), 1), range(12)) == [(5, Refit(5)), (10, Refit(10))]
    # a fitted model changes nothing in paper mode, not even at step 0
    assert run(AnchorSchedule(cfg(), 2), range(5), fitted=True) == [(2, Refit(1)), (4, Refit(2))]


def test_one_fit_per_step_and_resume_at_a_refit_step():
    # micro-batches of one optimiser step repeat the step: one fit per step (1 step per epoch, r = 1)
    assert run(AnchorSchedule(cfg(), 1), [0, 1, 1, 2, 2, 2]) == [(1, Refit(1)), (2, Refit(2))]
    # a run resumed at step 12 (its checkpoint holds 12 steps, written before step 12's fit): the fit due at 12 runs
    # there once, then 18; 3 steps per epoch, r = 2
    assert run(AnchorSchedule(cfg(refresh_every=2), 3), [12, 12, 13, 17, 18, 18]) == [
        (12, Refit(4)), (18, Refit(6))]
    # resumed between refits: the next one is at the next multiple of r epochs
    assert run(AnchorSchedule(cfg(refresh_every=2), 3), range(7, 13)) == [(12, Refit(4))]
    # the guard is the latest fit's step only: a later call at an earlier refit step (a new run from a checkpoint
    # through the same model) refits again
    s = AnchorSchedule(cfg(), 2)
    assert run(s, [2, 4, 2]) == [(2, Refit(1)), (4, Refit(2)), (2, Refit(1))]
    assert s.last_step == 2


def test_eval_mode_neither_fits_nor_uses_up_the_step():
    s = AnchorSchedule(cfg(), 1)
    assert run(s, [1, 2], training=False) == [] and s.last_step is None
    assert run(s, [2]) == [(2, Refit(2))] and s.last_step == 2
    assert s(3, fitted=False, training=False, refit=lambda f: 1 / 0) is None  # no call in eval mode


def test_compat_fits_the_first_sanity_check_points_images_before_training():
    # compat dis-dis (row 10): a fit at step 0 on the first 6 images (epoch 0), then after every epoch
    c = cfg(compat="dis-dis", sanity_check_points=6)
    assert run(AnchorSchedule(c, 2), [0, 0, 1, 2, 3, 4]) == [(0, Refit(0, 6)), (2, Refit(1)), (4, Refit(2))]
    # already fitted (a loaded model): no fit before training
    assert run(AnchorSchedule(c, 2), [0, 1, 2], fitted=True) == [(2, Refit(1))]
    # sanity_check_points = 0: none either; more than the dataset holds: the fit reads it all (limit as given)
    assert run(AnchorSchedule(cfg(compat="dis-dis", sanity_check_points=0), 2), [0, 2]) == [(2, Refit(1))]
    assert run(AnchorSchedule(cfg(compat="dis-dis"), 2), [0]) == [(0, Refit(0, 1024))]
    # paper mode ignores sanity_check_points
    assert run(AnchorSchedule(cfg(sanity_check_points=6), 2), [0, 1, 2]) == [(2, Refit(1))]


def test_due_is_the_pure_rule_and_reads_the_config_at_every_step():
    c = cfg(refresh_every=3)
    s = AnchorSchedule(c, 2)
    assert s.every == 6
    assert [t for t in range(25) if s.due(t, fitted=False) is not None] == [6, 12, 18, 24]
    assert s.due(18, fitted=True) == Refit(9) and s.last_step is None   # due runs nothing
    c.refresh_every = 1
    assert s.every == 2 and s.due(4, fitted=False) == Refit(2)


def test_bad_inputs():
    with pytest.raises(TypeError, match=r"^X: dyga must be a DyGAConfig, got dict$"):
        AnchorData.checked({}, DATA, 1, who="X")
    with pytest.raises(TypeError, match=r"^AnchorSchedule: dyga must be a DyGAConfig, got NoneType$"):
        AnchorSchedule(None, 1)
    for make in (lambda n: AnchorData.checked(cfg(), DATA, n), lambda n: AnchorSchedule(cfg(), n)):
        with pytest.raises(ValueError, match=r"^steps_per_epoch must be a positive int, got 0$"):
            make(0)
        with pytest.raises(ValueError, match=r"^steps_per_epoch must be a positive int, got True$"):
            make(True)
    with pytest.raises(ValueError, match=r"^batch_size must be a positive int, got -1$"):
        AnchorData.checked(cfg(), DATA, 1, -1)
    with pytest.raises(TypeError, match=r"^dataset must be a map-style dataset of images"):
        AnchorData.checked(cfg(), "images/", 1)
    with pytest.raises(ValueError, match=r"^X: the anchors are fitted on the dataset's images, at least 3 .* it has 2$"):
        AnchorData.checked(cfg(n_components=3), DATA[:2], 1, who="X")
    with pytest.raises(ValueError, match=r"^attach_anchor_data: the anchors are fitted"):     # the default who
        AnchorData.checked(cfg(n_components=3), DATA[:2], 1)
    assert AnchorData.checked(cfg(n_components=3), DATA[:3], 4, 5) == (DATA[:3], 4, 5)  # K0 = 3: the least DyGA.fit takes
    assert AnchorData.checked(cfg(), DATA, 2).batch_size == 256
    with pytest.raises(ValueError, match=r"has 1$"):
        AnchorData.checked(cfg(n_components=1), DATA[:1], 1)              # and never fewer than 2
    with pytest.raises(ValueError, match=r"sanity_check_points=1 images, fewer than the 2"):
        AnchorData.checked(cfg(compat="dis-dis", sanity_check_points=1), DATA, 1)
    with pytest.raises(ValueError, match=r"sanity_check_points=3 images, fewer than the 4"):
        AnchorData.checked(cfg(compat="dis-dis", sanity_check_points=3, n_components=4), DATA, 1)
    AnchorData.checked(cfg(compat="dis-dis", sanity_check_points=2), DATA, 1)   # exactly enough
    AnchorData.checked(cfg(compat="dis-dis", sanity_check_points=0), DATA[:2], 1)  # no fit before training
    AnchorData.checked(cfg(sanity_check_points=1), DATA, 1)               # paper mode has no fit before training
    s = AnchorSchedule(cfg(), 1)
    for bad in (-1, 1.0, True, None):
        with pytest.raises(ValueError, match="step must be a non-negative int"):
            s.due(bad, fitted=False)


def test_recipe_arguments():
    # 100 images in batches of 32: 3 steps per epoch; extraction in 256s (paper) or the training batch (compat)
    assert recipe_anchor_data(cfg(), 100, 32) == {"steps_per_epoch": 3, "batch_size": 256}
    assert recipe_anchor_data(cfg(compat="dis-dis"), 100, 32) == {"steps_per_epoch": 3, "batch_size": 32}
    # a dataset smaller than a batch: one step per epoch
    assert recipe_anchor_data(cfg(), 10, 32) == {"steps_per_epoch": 1, "batch_size": 256}
    assert recipe_anchor_data(cfg(), 64, 32) == {"steps_per_epoch": 2, "batch_size": 256}
    with pytest.raises(ValueError, match=r"^train_batch_size must be a positive int, got 0$"):
        recipe_anchor_data(cfg(), 10, 0)
    with pytest.raises(ValueError, match=r"^n_images must be a non-negative int, got -1$"):
        recipe_anchor_data(cfg(), -1, 32)
    # an empty training set passes here, so that attach_anchor_data names the problem ("it has 0")
    assert recipe_anchor_data(cfg(), 0, 32) == {"steps_per_epoch": 1, "batch_size": 256}


def test_disdiff_under_compat_fits_before_disentangling_then_on_aligned_units():
    """DisDiff + DyGA compat: the fit before training at the first disentangling step, on the raw units of the
    first sanity_check_points images; the next fits on all images, units aligned per extraction batch (as EncDiff's
    features(aligned=True))."""
    from diffrep.methods.disdiff import DisDiff, DisDiffConfig

    torch.manual_seed(0)
    data = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    dy = DyGAConfig(num_units=4, token_dim=8, n_components=2, max_components=4, min_mass=2.0, compat="dis-dis",
                    sanity_check_points=12)
    m = DisDiff(DisDiffConfig(dyga=dy, sample_steps=2, pretrain_steps=1))
    m.attach_anchor_data([(img, 0) for img in data], 2, batch_size=8)
    m.train()
    g = torch.Generator().manual_seed(0)
    m.loss(data[:4], step=0, generator=g)                     # pre-training: nothing
    assert not bool(m.dyga.fitted)
    m.eval()
    with torch.no_grad():
        raw = m.encode_units(data[:12])
    m.train()
    m.loss(data[:4], step=1, generator=g)                     # the first disentangling step: the fit before training
    assert int(m.dyga.num_fits) == 1 and m.dyga.last_fit["n_points"] == 12 and m.dyga.last_fit["epoch"] == 0
    torch.testing.assert_close(m.dyga.norm_hi, raw.amax(dim=(0, 2)), rtol=0, atol=0)
    m.loss(data[:4], step=2, generator=g)
    assert int(m.dyga.num_fits) == 1
    m.eval()
    with torch.no_grad():
        aligned = torch.cat([m.dyga(m.encode_units(data[i:i + 8])) for i in (0, 8)])
    m.train()
    m.loss(data[:4], step=3, generator=g)                     # 2 disentangling steps done: the end of epoch 1
    assert int(m.dyga.num_fits) == 2 and m.dyga.last_fit["n_points"] == 16 and m.dyga.last_fit["epoch"] == 1
    torch.testing.assert_close(m.dyga.norm_hi, aligned.amax(dim=(0, 2)), rtol=0, atol=0)


def test_fitted_as_a_function_is_read_at_step_0_only():
    """The methods pass the GPU flag as a function: reading it every step would synchronise host and device."""
    from diffrep.methods.dyga import DyGAConfig
    from diffrep.methods.dyga_schedule import AnchorSchedule, Refit

    reads = []

    def fitted():
        reads.append(1)
        return False

    s = AnchorSchedule(DyGAConfig(num_units=4, token_dim=8, compat="dis-dis", sanity_check_points=8), steps_per_epoch=2)
    assert s.due(0, fitted=fitted) == Refit(0, 8) and len(reads) == 1
    assert [s.due(k, fitted=fitted) for k in (1, 2, 3)] == [None, Refit(1), None] and len(reads) == 1
