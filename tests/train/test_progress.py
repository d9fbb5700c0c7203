"""Progress bars (tqdm.auto, stderr): hidden off a terminal unless DIFFREP_PROGRESS=1, never with DIFFREP_PROGRESS=0;
the samplers report one tick per step."""

import torch

from diffrep._progress import progress


def test_progress_switch(monkeypatch, capsys):
    monkeypatch.setenv("DIFFREP_PROGRESS", "0")
    items = [1, 2, 3]
    assert progress(items) is items
    monkeypatch.setenv("DIFFREP_PROGRESS", "1")
    assert list(progress(items, desc="work")) == items
    assert "work" in capsys.readouterr().err  # forced on although stderr is captured, not a terminal
    monkeypatch.delenv("DIFFREP_PROGRESS")
    assert list(progress(items, desc="quiet")) == items
    assert "quiet" not in capsys.readouterr().err  # tqdm's own rule: no bar when stderr is not a terminal


def test_diffusion_sampler_shows_its_steps(monkeypatch, capsys):
    from diffrep.diffusion.samplers import DDIMSampler
    from diffrep.diffusion.schedules import NoiseSchedule, NoiseScheduleConfig

    monkeypatch.setenv("DIFFREP_PROGRESS", "1")
    s = DDIMSampler(NoiseSchedule(NoiseScheduleConfig(kind="linear", num_timesteps=50)))
    s.sample(lambda x, t: torch.zeros_like(x), (2, 1, 4, 4), num_steps=5, generator=torch.Generator().manual_seed(0))
    err = capsys.readouterr().err
    assert "sampling" in err and "0/5 " in err  # a bar over the 5 DDIM steps
