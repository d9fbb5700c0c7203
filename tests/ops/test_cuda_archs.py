"""Which GPUs a CUDA build runs on (diffrep._cuda_archs; docs/build.md#cuda-architectures), and what
``diffrep info`` / backend selection report when ``_cuda`` is absent.

The expected verdicts are written out by hand from CUDA's rules: a cubin sm_XY runs on X.Z with Z >= Y,
PTX compute_XY JIT-compiles for any capability >= X.Y, ``a`` code on exactly X.Y, ``f`` code on X.Z with
Z >= Y; the driver prefers a cubin."""

from __future__ import annotations

import json

import pytest
import torch

from diffrep import _native
from diffrep._cuda_archs import Arch, CompiledArchs, device_verdict, parse_architectures, parse_virtual_list
from diffrep.cli import main
from diffrep.cli.info import format_info
from diffrep.ops._dispatch import select

DEVICES = [(7, 5), (8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (12, 0)]
NO = None  # no kernel image
# build -> the image each device of DEVICES runs ("sm_XY" cubin, "compute_XY" PTX) or NO
TABLE = {
    "80;90": [NO, "sm_80", "sm_80", "sm_80", "sm_90", "compute_90", "compute_90"],
    "90": [NO, NO, NO, NO, "sm_90", "compute_90", "compute_90"],
    "80-real;90-real": [NO, "sm_80", "sm_80", "sm_80", "sm_90", NO, NO],
    "80;90-virtual": [NO, "sm_80", "sm_80", "sm_80", "compute_90", "compute_90", "compute_90"],
    "80-virtual": [NO, "compute_80", "compute_80", "compute_80", "compute_80", "compute_80", "compute_80"],
    "86-real": [NO, NO, "sm_86", "sm_86", NO, NO, NO],
    "75-real,89-real": ["sm_75", NO, NO, "sm_89", NO, NO, NO],
    "90a": [NO, NO, NO, NO, "sm_90a", NO, NO],
    "100f-real": [NO, NO, NO, NO, NO, "sm_100f", NO],
    "120-real": [NO, NO, NO, NO, NO, NO, "sm_120"],
}


def _image(verdict):
    return None if verdict.image is None else verdict.image.split()[0]


@pytest.mark.parametrize("spec", sorted(TABLE))
def test_each_device_of_the_table_runs_the_image_the_rules_give(spec):
    compiled = parse_architectures(spec)
    for cap, expected in zip(DEVICES, TABLE[spec]):
        v = device_verdict(compiled, cap)
        assert v.usable is (expected is not None), (spec, cap, v)
        assert _image(v) == expected, (spec, cap, v)
        if expected is None:
            assert v.reason.startswith(f"the GPU's compute capability {cap[0]}.{cap[1]} (sm_{cap[0]}{cap[1]}) "
                                       "has no kernel image")
            assert compiled.describe() in v.reason and f"CUDAARCHS including {cap[0]}{cap[1]}" in v.reason
        else:
            assert v.reason is None
            assert ("JIT" in v.image) is expected.startswith("compute_")


def test_family_and_architecture_specific_code_follow_their_own_rules():
    fam = parse_architectures("100f-real")
    assert _image(device_verdict(fam, (10, 3))) == "sm_100f"
    ptx_fam = parse_architectures("100f-virtual")
    assert [_image(device_verdict(ptx_fam, c)) for c in [(9, 0), (10, 0), (10, 3), (12, 0)]] == [
        None, "compute_100f", "compute_100f", None]
    arch = parse_architectures("90a-virtual")
    assert [_image(device_verdict(arch, c)) for c in [(9, 0), (10, 0)]] == ["compute_90a", None]
    # sm_100a / compute_100a: exactly 10.0, not 10.3 of the same family
    for spec in ("100a-real", "100a-virtual"):
        assert [device_verdict(parse_architectures(spec), c).usable for c in [(10, 0), (10, 3)]] == [True, False]


def test_cmake_special_values_take_the_architectures_from_nvcc_list():
    # nvcc 13.0's -arch=all / -arch=all-major: a cubin for each listed architecture, PTX for the highest major
    all_ = parse_architectures("all", (75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121))
    assert [a.number for a in all_.sass] == ["75", "80", "86", "87", "88", "89", "90", "100", "103", "110", "120",
                                            "121"]
    assert all_.ptx == (Arch(12, 0),)
    assert _image(device_verdict(all_, (12, 1))) == "sm_121"
    assert _image(device_verdict(all_, (13, 0))) == "compute_120"
    major = parse_architectures("all-major", (75, 80, 90, 100, 110, 120))
    assert [_image(device_verdict(major, c)) for c in [(8, 6), (8, 9), (10, 3), (12, 1), (13, 0), (7, 0)]] == [
        "sm_80", "sm_80", "sm_100", "sm_120", "compute_120", None]
    native = parse_architectures("native", (89,))
    assert native == CompiledArchs((Arch(8, 9),), ())
    assert parse_architectures("native", (80, 90)) == CompiledArchs((Arch(8, 0), Arch(9, 0)), ())  # no PTX
    assert [_image(device_verdict(native, c)) for c in [(8, 9), (9, 0)]] == ["sm_89", None]


def test_spec_spellings_and_the_cubin_ptx_split():
    both = CompiledArchs((Arch(8, 0), Arch(9, 0)), (Arch(8, 0), Arch(9, 0)))
    assert parse_architectures("80;90") == both
    assert parse_architectures(" 90 , 80 ") == both  # the module reports CMake's list with commas
    assert parse_architectures("80;80-real;90") == both
    assert parse_architectures("80-real;90-virtual") == CompiledArchs((Arch(8, 0),), (Arch(9, 0),))
    assert parse_architectures("80;90").describe() == "SASS sm_80, sm_90; PTX compute_80, compute_90"
    assert parse_architectures("90-virtual").describe() == "SASS none; PTX compute_90"
    assert parse_virtual_list("800,900") == (80, 90)
    assert parse_virtual_list("1210, 750") == (75, 121)


@pytest.mark.parametrize("spec, match", [
    ("", "empty"), (";", "empty"), ("sm_80", "is not NN"), ("80-foo", "is not NN"), ("8", "is not NN"),
    ("80b", "is not NN"), ("all;80", "must be the only entry"), ("all", "compiler's list is empty"),
    ("unknown", "is not NN"),
])
def test_unreadable_specs_are_refused_by_name(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_architectures(spec)


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="must be a str"):
        parse_architectures(80)
    with pytest.raises(TypeError, match="virtual must be"):
        parse_architectures("all", [80])
    with pytest.raises(TypeError, match="virtual must be"):
        parse_architectures("all", (True,))
    for text in ("", "80,90", "800,x", "805"):
        with pytest.raises(ValueError, match="__CUDA_ARCH_LIST__"):
            parse_virtual_list(text)
    with pytest.raises(TypeError, match="must be a str"):
        parse_virtual_list(800)
    compiled = parse_architectures("90")
    with pytest.raises(TypeError, match="CompiledArchs"):
        device_verdict("90", (9, 0))
    for cap in [(9,), [9, 0], (9, "0"), (-1, 0), (True, 0), (9.0, 0)]:
        with pytest.raises(ValueError, match="capability must be"):
            device_verdict(compiled, cap)
    with pytest.raises(TypeError, match="device_index"):
        _native.cuda_module_and_reason("0")
    with pytest.raises(TypeError, match="device_index"):
        _native.cuda_module_and_reason(True)


cuda_absent = pytest.mark.skipif(_native._load("_cuda")[0] is not None, reason="diffrep._cuda is built here")


@cuda_absent
def test_info_without_the_cuda_module_says_why_and_names_no_architectures(capsys):
    mod = _native.info()["modules"]["_cuda"]
    assert mod["built"] is False and mod["usable"] is False
    assert mod["reason"].startswith("diffrep._cuda could not be imported")
    assert not {"architectures", "compiled", "devices"} & set(mod)
    assert _native.cuda_module_and_reason() == (None, mod["reason"])
    assert _native.cuda_module_and_reason(0) == (None, mod["reason"])
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["modules"]["_cuda"] == mod
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert f"  _cuda  not built\n         reason: {mod['reason']}\n" in text
    assert "compiled:" not in text
    # backend selection for a CUDA device gives the same reason (what diffrep.ops.explain shows)
    choice = select("knn.knn_scan", torch.device("cuda", 0))
    assert choice.backend == "reference" and choice.skipped == {"cuda": [mod["reason"]]}


def test_info_text_shows_the_compiled_architectures_and_each_device():
    # the report of a build "80;90" on a machine with an sm_90 and an sm_75 GPU (current device 1)
    compiled = parse_architectures("80;90")
    ok, bad = device_verdict(compiled, (9, 0)), device_verdict(compiled, (7, 5))
    report = {"diffrep": "0", "torch": "2", "python": "3", "platform": "p", "torch_cuda": "13.0", "gpu": "H100",
              "forced_backend": None, "modules": {"_cuda": {
                  "built": True, "usable": False, "reason": f"cuda:1: {bad.reason}", "runtime_version": 13000,
                  "architectures": "80,90", "virtual_architectures": "800,900", "compiled": compiled.describe(),
                  "devices": [
                      {"index": 0, "name": "H100", "capability": "9.0", "usable": True, "image": ok.image,
                       "reason": None},
                      {"index": 1, "name": "T4", "capability": "7.5", "usable": False, "image": None,
                       "reason": bad.reason}]}}}
    lines = format_info(report).splitlines()
    at = lines.index("  _cuda  built, not usable (cudart=13000, archs=80,90)")
    assert lines[at + 1:] == [
        "         compiled: SASS sm_80, sm_90; PTX compute_80, compute_90 (nvcc virtual: 800,900)",
        "         cuda:0 H100 (compute capability 9.0): runs sm_90 cubin",
        f"         cuda:1 T4 (compute capability 7.5): not usable: {bad.reason}",
    ]  # the module's reason repeats device 1's and is not printed twice


@pytest.mark.skipif(_native._load("_cuda")[0] is None or not torch.cuda.is_available(), reason="needs _cuda and a GPU")
def test_the_build_report_agrees_with_the_pure_decision_on_every_gpu():
    mod = _native._load("_cuda")[0]
    report = _native.cuda_build_report(mod)
    compiled = parse_architectures(mod.architectures(), parse_virtual_list(mod.virtual_architectures()))
    assert report["compiled"] == compiled.describe()
    for dev in report["devices"]:
        v = device_verdict(compiled, torch.cuda.get_device_capability(dev["index"]))
        assert (dev["usable"], dev["image"], dev["reason"]) == tuple(v)
        assert (_native.cuda_module_and_reason(dev["index"])[0] is not None) is v.usable
