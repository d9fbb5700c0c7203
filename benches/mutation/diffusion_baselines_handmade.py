"""Hand-made mutants of the DiffAE / InfoDiffusion / DisDiff loss and coefficient code
(benches/results/mutation_diffusion_baselines_2026-12-06.md). Each mutant is applied to a scratch copy of
the repository (argv[1], e.g. made with ``git archive HEAD | tar -x -C DIR`` plus the built _cpu*.so),
the targeted test file is run, the file restored. It is slow: run it on an otherwise idle machine, one thread.

    python3 benches/mutation/diffusion_baselines_handmade.py SCRATCH_DIR [OUT.json]
"""
import subprocess, sys, json, os
SRC = sys.argv[1]
M = [
 ("disdiff", "shift_coef sign", "return -alpha.sqrt() * (1 - ab_prev) / (1 - ab).sqrt(), -(1 - ab).sqrt()", "return alpha.sqrt() * (1 - ab_prev) / (1 - ab).sqrt(), -(1 - ab).sqrt()", "tests/methods/test_disdiff.py"),
 ("disdiff", "guidance coef sqrt dropped", "return -alpha.sqrt() * (1 - ab_prev) / (1 - ab).sqrt(), -(1 - ab).sqrt()", "return -alpha.sqrt() * (1 - ab_prev) / (1 - ab).sqrt(), -(1 - ab)", "tests/methods/test_disdiff.py"),
 ("disdiff", "abar_prev -> abar", "    ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])", "    ab_prev = ab", "tests/methods/test_disdiff.py"),
 ("disdiff", "variant logits sign", "logits_variant = (z_hat - z).norm(dim=-1) - (z_hat_c - z).norm(dim=-1)", "logits_variant = (z_hat_c - z).norm(dim=-1) - (z_hat - z).norm(dim=-1)", "tests/methods/test_disdiff.py"),
 ("disdiff", "invariant CE dropped", "ce = F.cross_entropy(logits_variant, concept, reduction=\"none\") + F.cross_entropy(logits_invariant, concept, reduction=\"none\")", "ce = F.cross_entropy(logits_variant, concept, reduction=\"none\")", "tests/methods/test_disdiff.py"),
 ("disdiff", "sample weight not squared", "weight = (x0_hat - x0_hat_c.detach()).pow(2).flatten(1).mean(1)", "weight = (x0_hat - x0_hat_c.detach()).abs().flatten(1).mean(1)", "tests/methods/test_disdiff.py"),
 ("disdiff", "compat weight 0.5", "return 1.0 if self.compat_cli_weight else self.dis_weight", "return 0.5 if self.compat_cli_weight else self.dis_weight", "tests/methods/test_disdiff.py"),
 ("disdiff", "L_r sum -> mean over units", "pred = eps + self._gather(\"shift_coef\", t, x0) * g.sum(1)", "pred = eps + self._gather(\"shift_coef\", t, x0) * g.mean(1)", "tests/methods/test_disdiff.py"),
 ("infodiffusion", "rec weight T", "return 1.0 / self.schedule.num_timesteps if self.rec_weight < 0 else self.rec_weight", "return 1.0 * self.schedule.num_timesteps if self.rec_weight < 0 else self.rec_weight", "tests/methods/test_infodiffusion.py"),
 ("infodiffusion", "KL mean over dims", "kl = gaussian_kl(mu, logvar, reduction=\"sum\").mean()", "kl = gaussian_kl(mu, logvar, reduction=\"mean\")", "tests/methods/test_infodiffusion.py"),
 ("infodiffusion", "mixture radius 1.5", "+ 1.4 * torch.cos(r)", "+ 1.5 * torch.cos(r)", "tests/methods/test_infodiffusion.py"),
 ("infodiffusion", "x1 mean sign", "mean1 = (x_in - b1 / (1 - ab1).sqrt() * e1) / a1.sqrt()", "mean1 = (x_in + b1 / (1 - ab1).sqrt() * e1) / a1.sqrt()", "tests/methods/test_infodiffusion.py"),
 ("infodiffusion", "MMD on the mean", "zm = z if c.mmd_on == \"sample\" else mu", "zm = mu", "tests/methods/test_infodiffusion.py"),
 ("diffae", "latent L1 -> L2", "per = (err.abs() if self.config.latent.loss == \"l1\" else err.pow(2)).mean(1)", "per = (err.pow(2) if self.config.latent.loss == \"l1\" else err.abs()).mean(1)", "tests/methods/test_diffae.py"),
 ("diffae", "z_std -> var", "self.z_std.copy_(z.std(0).clamp_min(1e-8))", "self.z_std.copy_(z.var(0).clamp_min(1e-8))", "tests/methods/test_diffae.py"),
 ("diffae", "autoencoder z from noise-free?", "pred = self.eps(self.schedule.q_sample(x0, t, noise), t, self.encode(x0))", "pred = self.eps(self.schedule.q_sample(x0, t, noise), t, self.encode(x0).detach())", "tests/methods/test_diffae.py"),
]
LAYER = [
 ("layers", "diffae scale without the 1 +", "            h = h * (1 + zs)  # DiffAE Eq. 7", "            h = h * zs  # DiffAE Eq. 7", "tests/methods/test_diffae.py"),
 ("samplers", "invert uses abar_t", "            x = ab_next.sqrt() * x0_hat + (1 - ab_next).sqrt() * eps", "            x = ab_next.sqrt() * x0_hat + (1 - ab_next) * eps", "tests/methods/test_diffae.py"),
]
files = {"disdiff": "python/diffrep/methods/disdiff.py", "infodiffusion": "python/diffrep/methods/infodiffusion.py",
         "diffae": "python/diffrep/methods/diffae.py", "layers": "python/diffrep/nn/layers.py", "samplers": "python/diffrep/diffusion/samplers.py"}
res = []
for mod, name, old, new, test in M + LAYER:
    path = os.path.join(SRC, files[mod])
    orig = open(path).read()
    if old not in orig:
        res.append((mod, name, "NOT APPLIED")); continue
    open(path, "w").write(orig.replace(old, new, 1))
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test], cwd=SRC,
                           env={**os.environ, "PYTHONPATH": SRC + "/python", "OMP_NUM_THREADS": "1"},
                           capture_output=True, text=True, timeout=300)
        res.append((mod, name, "killed" if r.returncode else "SURVIVED"))
    finally:
        open(path, "w").write(orig)
    print(res[-1], flush=True)
if len(sys.argv) > 2:
    json.dump(res, open(sys.argv[2], "w"), indent=1)
