"""The resume tests' run: train a tiny ToyDDPM, optionally SIGKILL itself. A child process (``python
_train_script.py RUN_DIR ...``) for the runs that are killed; ``main`` in the test's own process for the
uninterrupted reference and the resumes (tests/train/test_resume.py)."""

import argparse
import os
import signal

import torch

from diffrep.data.toy_shapes import ToyShapes, ToyShapesConfig
from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig
from diffrep.nn import UNetConfig
from diffrep.train import TrainConfig, Trainer, seed_everything


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--kill-at", type=int, default=0, help="SIGKILL after this optimiser step")
    p.add_argument("--kill-in-save", type=int, default=0, help="SIGKILL while writing the checkpoint of this step")
    p.add_argument("--resume", default=None)
    a = p.parse_args(argv)

    torch.set_num_threads(1)
    seed_everything(0)
    model = ToyDDPM(ToyDDPMConfig(unet=UNetConfig(image_size=8, model_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                                                  attention_resolutions=(4,), num_groups=4, dropout=0.1)))
    data = ToyShapes(ToyShapesConfig(num_images=40, image_size=8))  # 5 batches per epoch: resume crosses epochs
    cfg = TrainConfig(steps=a.steps, batch_size=8, lr=1e-3, warmup_steps=3, ema_decay=0.9, log_every=1, ckpt_every=3,
                      keep_checkpoints=5, device="cpu", deterministic=True)
    callbacks = []
    if a.kill_at:
        callbacks.append(lambda tr, step, m: os.kill(os.getpid(), signal.SIGKILL) if step == a.kill_at else None)
    if a.kill_in_save:
        real_save = torch.save

        def dying_save(obj, f, *args, **kw):
            if isinstance(obj, dict) and obj.get("step") == a.kill_in_save:
                with open(f, "wb") as fh:
                    fh.write(b"partial")
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, f, *args, **kw)

        torch.save = dying_save
    Trainer(model, data, cfg, a.run_dir, callbacks=callbacks).train(resume=a.resume)


if __name__ == "__main__":
    main()
