"""What a config may make this program call: every route to a ``_target_`` is checked on the
composed config, a file or run directory cannot extend the allow-list, and secrets never print.

Each attack names ``tempfile.mkdtemp(dir=., prefix=pwned)``: not on any never-allowed list, so
only the allow-list stands between it and a ``pwned*`` directory appearing in the working dir.
"""

from __future__ import annotations

import sys
import tomllib
from secrets import token_hex
from pathlib import Path

from dataclasses import dataclass

import hydra
import pytest
import torch
from hydra.core.config_store import ConfigStore
from hydra_zen import builds
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.importlib_resources_config_source import ImportlibResourcesConfigSource
from hydra._internal.sources_registry import SourcesRegistry
from omegaconf import OmegaConf

from tests.helpers import QUICK, run_cli, run_main
from typedexp import ConfigError, launch
from typedexp.specs.models import MLP
from typedexp.app.config_guard import (
    SUPPORTED_HYDRA,
    PackageConfigsChecked,
    Rules,
    check_composed,
    config_guard,
    require_supported_hydra,
)
from typedexp.core.safety import AllowList
from typedexp.core.safety.secrets import MaskingStream, mask, redact

MAKES_A_DIR = "{_target_:tempfile.mkdtemp,dir:.,prefix:pwned}"
MAKES_A_DIR_YAML = "_target_: tempfile.mkdtemp\ndir: .\nprefix: pwned\n"
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
# The same dict, made only when Hydra resolves the interpolation.
CREATES_IT = """'${oc.create:"{_target_: tempfile.mkdtemp, dir: ., prefix: pwned}"}'"""


def pwned(root: Path) -> list[Path]:
    return list(root.rglob("pwned*"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working dir with a finished run and a --config-dir of hostile files."""
    cwd = tmp_path_factory.mktemp("guard")
    done = run_cli([*QUICK, "hydra.run.dir=outputs/earlier"], cwd)
    assert done.returncode == 0, done.stderr
    files = {
        "evil/hydra/callbacks/spy.yaml": "# @package hydra.callbacks\nspy:\n  " + MAKES_A_DIR_YAML.replace("\n", "\n  "),
        "evil/hydra/job_logging/spy.yaml": "version: 1\nformatters:\n  spy:\n    (): tempfile.mkdtemp\n"
        "    dir: .\n    prefix: pwned\n",
        "evil/hydra/launcher/fast.yaml": "# @package hydra.launcher\n" + MAKES_A_DIR_YAML,
        "evil/model/wide.yaml": "# @package _global_\nallowed_targets: [tempfile.mkdtemp]\nmodel:\n  "
        + MAKES_A_DIR_YAML.replace("\n", "\n  "),
        "evil/experiment/sweepy.yaml": "# @package _global_\nhydra:\n  sweeper:\n    params:\n"
        f"      +dataset.extra: '{MAKES_A_DIR}'\n",
        "evil/experiment/relog.yaml": "# @package _global_\nhydra:\n  sweeper:\n    params:\n"
        "      hydra.job_logging.handlers.console.class: tempfile.mkdtemp\n",
        "evil/model/deep.yaml": f"_target_: typedexp.specs.models.MLP\nhidden: [8]\nextra: {CREATES_IT}\n",
    }
    for name, text in files.items():
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        (cwd / name).write_text(text)
    return cwd


ROUTES = [
    # (arguments, words the one error line holds)
    (["model._target_=tempfile.mkdtemp", "+model.dir=.", "+model.prefix=pwned"], ["model._target_=tempfile.mkdtemp: refused"]),
    (["model._target_=torch.utils.collect_env.run"], ["torch.utils.collect_env is never allowed"]),
    (["model._target_=torch.nn.Linear"], ["model._target_=torch.nn.Linear: refused", "allowed_targets=[torch.nn.Linear]"]),
    ([f"+dataset.extra={MAKES_A_DIR}"], ["dataset.extra._target_=tempfile.mkdtemp: refused"]),
    ([f"+hydra.callbacks.spy={MAKES_A_DIR}"], ["hydra.callbacks.spy._target_=tempfile.mkdtemp: refused"]),
    ([f"+hydra.callbacks.spy={CREATES_IT}"], ["hydra.callbacks.spy._target_=tempfile.mkdtemp"]),
    (["-m", "hydra.launcher._target_=tempfile.mkdtemp", "+hydra.launcher.dir=.", "+hydra.launcher.prefix=pwned"], ["hydra.launcher._target_=tempfile.mkdtemp: refused"]),
    (["--config-dir", "evil", "hydra/job_logging=spy"], ["hydra.job_logging.formatters.spy.()=tempfile.mkdtemp"]),
    (["hydra.job_logging.handlers.console.stream=ext://antigravity"], ["ext://antigravity: refused"]),
    (["hydra.job_logging.handlers.file.filename=/tmp/pwned.log"], ["log files are written inside the run directory"]),
    (["+hydra.job.env_set.LD_PRELOAD=/tmp/pwned.so"], ["hydra.job.env_set.LD_PRELOAD: refused"]),
    (["--config-dir", "evil", "hydra/callbacks=spy"], ["hydra.callbacks.spy._target_=tempfile.mkdtemp: refused"]),
    (["-m", "--config-dir", "evil", "hydra/launcher=fast"], ["hydra.launcher._target_=tempfile.mkdtemp: refused"]),
    (["--config-dir", "evil", "model=wide"], ["allowed_targets=['tempfile.mkdtemp'] is set by a config file"]),
    (["--config-dir", "evil", "model=deep"], ["model.extra._target_=tempfile.mkdtemp: refused"]),
    (["-m", "--config-dir", "evil", "model=small,deep"], ["model.extra._target_=tempfile.mkdtemp: refused"]),
    (["-m", "--config-dir", "evil", "+experiment=sweepy"], ["dataset.extra._target_=tempfile.mkdtemp: refused"]),
    (["-m", "--config-dir", "evil", "+experiment=relog"], ["a sweep cannot vary Hydra's settings"]),
    (["allowed_targets=[os.*]"], ["allowed_targets: os.* is refused (os is never allowed)"]),
    (["allowed_targets=[torch]", "model._target_=torch.nn.Linear"], ["model._target_=torch.nn.Linear: refused"]),
    (["--experimental-rerun", "outputs/earlier/.hydra/config.pickle"], ["--experimental-rerun is refused"]),
]


@pytest.mark.parametrize(("args", "words"), ROUTES, ids=[" ".join(a) for a, _ in ROUTES])
def test_every_route_to_a_target_is_refused_before_anything_runs(project: Path, args: list[str], words: list[str]) -> None:
    flags = [a for i, a in enumerate(args) if a.startswith("-") or (i and args[i - 1] == "--config-dir")]
    overrides = [a for a in args if a not in flags]
    done = run_cli([*flags, *QUICK, *overrides], project)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr_lines) == 1, done.stderr
    for word in words:
        assert word in done.stderr_lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert not pwned(project)


def test_a_poisoned_run_directory_cannot_run_code_through_resume(project: Path, tmp_path: Path) -> None:
    done = run_cli([*QUICK, "trainer.checkpoint_every=1", "hydra.run.dir=outputs/shared"], tmp_path)
    assert done.returncode == 0, done.stderr
    saved = tmp_path / "outputs" / "shared" / ".hydra" / "overrides.yaml"
    poisoned = [*OmegaConf.load(saved), f"+hydra.callbacks.spy={MAKES_A_DIR}", "allowed_targets=[tempfile.mkdtemp]"]
    saved.write_text(OmegaConf.to_yaml(OmegaConf.create(poisoned)))
    done = run_cli(["resume=outputs/shared", "epochs=2"], tmp_path)
    assert done.returncode == 2
    assert done.stderr_lines == [
        "typedexp: error: allowed_targets=['tempfile.mkdtemp'] is set by a config file or a run directory; "
        "only the command line (or launch()'s overrides) can extend the allow-list: type allowed_targets=[...] "
        "yourself if you trust what it names"
    ]
    assert not pwned(tmp_path)


def test_a_poisoned_callback_in_a_run_directory_is_refused_on_resume(tmp_path: Path) -> None:
    done = run_cli([*QUICK, "trainer.checkpoint_every=1", "hydra.run.dir=outputs/shared"], tmp_path)
    assert done.returncode == 0, done.stderr
    saved = tmp_path / "outputs" / "shared" / ".hydra" / "overrides.yaml"
    saved.write_text(OmegaConf.to_yaml(OmegaConf.create([*OmegaConf.load(saved), f"+hydra.callbacks.spy={MAKES_A_DIR}"])))
    done = run_cli(["resume=outputs/shared", "epochs=2"], tmp_path)
    assert done.returncode == 2
    assert len(done.stderr_lines) == 1 and "hydra.callbacks.spy._target_=tempfile.mkdtemp: refused" in done.stderr
    assert not pwned(tmp_path)


@dataclass(frozen=True)
class Narrow(MLP):
    """A user's own model spec, registered into typedexp's model group from Python."""

    hidden: tuple[int, ...] = (4,)


def test_a_spec_registered_from_python_is_allowed(workdir: Path) -> None:
    store = ConfigStore.instance()
    store.store(group="model", name="narrow", node=builds(Narrow, populate_full_signature=True))
    try:
        result = launch([*QUICK[1:], "model=narrow"])
    finally:
        del store.repo["model"]["narrow.yaml"]
    assert result.weights_file.is_file()
    assert torch.load(result.weights_file)["1.weight"].shape[0] == 4  # Flatten, then Linear(64 -> 4)


def test_what_the_command_line_allows_is_allowed_exactly(workdir: Path) -> None:
    # torch.nn.Linear builds, then fails as a model (no .build): the allow-list let it through.
    with pytest.raises(Exception) as caught:
        launch([*QUICK[1:], "model._target_=torch.nn.Linear", "+model.in_features=2", "+model.out_features=2",
                "allowed_targets=[torch.nn.Linear]"])
    assert "refused" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"model._target_=torch.nn.Linear: refused"):
        launch([*QUICK[1:], "model._target_=torch.nn.Linear", "allowed_targets=[torch.nn.Linear.forward]"])


def test_allow_list_entries_mean_a_name_or_a_module_s_direct_members() -> None:
    allowed = AllowList.parse(["mylib.models.*", "mylib.train.fit"])
    assert allowed.permits("mylib.models.ResNet")
    assert allowed.permits("mylib.train.fit")
    for refused in ("mylib.models.helpers.run", "mylib.models", "mylib.train.fit.inner", "mylib.train.other",
                    "mylib.modelsx.Net", "mylib.train.fitx", "mylib"):
        assert not allowed.permits(refused), refused
    for bad in ("*", "mylib.*.x", "", "my lib", "${oc.env:X}", "os.system", "subprocess.*"):
        with pytest.raises(ConfigError, match="allowed_targets"):
            AllowList.parse([bad])


def test_only_registered_configs_and_installed_plugins_are_allowed_by_default() -> None:
    cfg = OmegaConf.create(
        {
            "model": {"_target_": "typedexp.specs.models.MLP", "act": {"_zen_target": "typedexp.specs.models.CNN"}},
            "hydra": {"launcher": {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}},
        }
    )
    own = AllowList(frozenset({"typedexp.specs.models.MLP"}))
    plugins = AllowList(frozenset({"hydra._internal.core_plugins.basic_launcher.BasicLauncher"}))
    with pytest.raises(ConfigError, match=r"model.act._zen_target=typedexp.specs.models.CNN: refused"):
        check_composed(cfg, Rules(AllowList(), own, plugins))
    with pytest.raises(ConfigError, match=r"hydra.launcher._target_=hydra._internal.core_plugins.basic_launcher.BasicLauncher: refused"):
        check_composed(cfg, Rules(AllowList(), own | AllowList(frozenset({"typedexp.specs.models.CNN"})), own))
    check_composed(cfg, Rules(AllowList(), own | AllowList(frozenset({"typedexp.specs.models.CNN"})), plugins))
    wrappers = OmegaConf.create({"m": {"_target_": "typedexp.specs.models.MLP", "_zen_wrappers": ["tempfile.mkdtemp"]}})
    with pytest.raises(ConfigError, match=r"m._zen_wrappers\[0\]=tempfile.mkdtemp"):
        check_composed(wrappers, Rules(AllowList(), own, plugins))


def test_an_interpolation_loop_is_refused_not_followed_forever() -> None:
    cfg = OmegaConf.create({"a": {"b": "${c}"}, "c": {"d": "${a}"}})
    with pytest.raises(ConfigError, match=r"^a.b.d.b...: the config nests more than"):
        check_composed(cfg, Rules(AllowList(), AllowList(), AllowList()))


def test_the_guard_wraps_hydra_s_loader_only_inside_the_block() -> None:
    original = ConfigLoaderImpl.load_configuration
    with config_guard(AllowList()):
        assert ConfigLoaderImpl.load_configuration is not original
    assert ConfigLoaderImpl.load_configuration is original


def test_the_guard_puts_hydra_s_package_config_source_back_after_the_block() -> None:
    sources = SourcesRegistry.instance().types
    with config_guard(AllowList()):
        assert sources["pkg"] is PackageConfigsChecked
    # Hydra's plugin scan loads its core plugins' modules again: the same class, another object.
    restored = sources["pkg"]
    assert (restored.__module__, restored.__qualname__) == (
        ImportlibResourcesConfigSource.__module__, ImportlibResourcesConfigSource.__qualname__)


# A module beside a shared config file: `python -m` puts the working directory on the import path.
IMPORT_MARKS = "from pathlib import Path\nPath('imported').touch()\n"


def test_a_config_file_cannot_import_a_package_through_its_search_path(tmp_path: Path) -> None:
    (tmp_path / "sidecar.py").write_text(IMPORT_MARKS)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "exp.yaml").write_text(
        "defaults:\n  - typedexp\n  - _self_\nhydra:\n  searchpath:\n    - pkg://sidecar\n"
    )
    done = run_cli(["-cd", "shared", "-cn", "exp", *QUICK], tmp_path)
    assert done.returncode == 2 and not (tmp_path / "imported").exists()
    assert done.stderr_lines == [
        "typedexp: error: hydra.searchpath: pkg://sidecar refused, reading configs from a package imports it; "
        "use file://<directory> (or --config-dir) instead"
    ]


def test_a_typed_package_search_path_is_refused_and_a_directory_works(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "sidecar_typed.py").write_text(IMPORT_MARKS)
    monkeypatch.syspath_prepend(str(workdir))
    with pytest.raises(ConfigError, match=r"^hydra.searchpath: pkg://sidecar_typed refused"):
        launch([*QUICK[1:], "hydra.searchpath=[pkg://sidecar_typed]"])
    assert not (workdir / "imported").exists() and "sidecar_typed" not in sys.modules
    (workdir / "more" / "model").mkdir(parents=True)
    (workdir / "more" / "model" / "tiny.yaml").write_text("_target_: typedexp.specs.models.MLP\nhidden: [3]\n")
    result = launch([*QUICK[1:], f"hydra.searchpath=[file://{workdir / 'more'}]", "model=tiny"])
    assert OmegaConf.load(result.run_dir / ".hydra" / "config.yaml").model.hidden == [3]


def test_the_hydra_version_gate_matches_the_pin_and_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    if "project" in pyproject:  # not in mutation testing's scratch copy, which has its own
        assert "hydra-core>=1.3,<1.4" in pyproject["project"]["dependencies"]
    assert SUPPORTED_HYDRA == "1.3." and hydra.__version__.startswith(SUPPORTED_HYDRA)
    monkeypatch.setattr(hydra, "__version__", "1.4.0")
    with pytest.raises(ConfigError, match="hydra-core 1.4.0 is installed"):
        require_supported_hydra()


def test_installed_hydra_plugins_still_work(workdir: Path) -> None:
    result = launch([*QUICK[1:], "hydra/launcher=basic", "hydra/sweeper=basic"])
    assert result.weights_file.is_file()


SECRET = "s3cr3t-value-987654"


def test_a_secret_interpolated_into_a_bad_value_is_masked_in_the_error(tmp_path: Path) -> None:
    done = run_cli([*QUICK, "optim.lr=${oc.env:MY_TOKEN}"], tmp_path, env={"MY_TOKEN": SECRET})
    assert done.returncode == 2
    assert SECRET not in done.stdout + done.stderr
    assert "***" in done.stderr
    done = run_cli(["--cfg", "job", "--resolve", "tracker.description=${oc.env:DB_PASSWORD}"], tmp_path,
                   env={"DB_PASSWORD": SECRET})
    assert done.returncode == 0, done.stderr
    assert "description: ***" in done.stdout and SECRET not in done.stdout


def test_launch_masks_secrets_in_the_errors_it_raises(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_SECRET", SECRET)
    with pytest.raises(ConfigError) as caught:
        launch([*QUICK[1:], "epochs=${oc.env:API_SECRET}"])
    assert SECRET not in str(caught.value) and "***" in str(caught.value)


def test_a_secret_typed_into_any_override_is_refused_by_its_variable_name(tmp_path: Path) -> None:
    done = run_cli([*QUICK, f"tracker.description=x{SECRET}"], tmp_path, env={"GITHUB_TOKEN": SECRET})
    assert done.returncode == 2
    assert done.stderr_lines == [
        "typedexp: error: tracker.description: the value contains GITHUB_TOKEN; secrets are never put in configs "
        "(Hydra saves overrides in .hydra/); read it from the environment instead"
    ]
    assert SECRET not in done.stdout + done.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_run_that_interpolates_a_secret_writes_it_nowhere(tmp_path: Path) -> None:
    args = ["tracker=offline", "tracker.log_dir=sl", *QUICK[1:], "tracker.description=${oc.env:SWANLAB_API_KEY}"]
    done = run_cli(args, tmp_path, env={"SWANLAB_API_KEY": SECRET, "SERVICE_KEY": "another-" + SECRET})
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.suffix == ".pt" for path in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path


def test_masking_covers_longer_secrets_first_and_leaves_short_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A_KEY", "abcdef")
    monkeypatch.setenv("B_TOKEN", "xxabcdefyy")
    monkeypatch.setenv("SHORT_KEY", "1")  # would mask every 1 in every line
    monkeypatch.setenv("NOT_HIDDEN", "visible-value")
    assert mask("xxabcdefyy abcdef 1 visible-value") == "*** *** 1 visible-value"
    assert redact({"a": ["abcdef", 1], "b": ("xxabcdefyy",)}) == {"a": ["***", 1], "b": ["***"]}


def test_the_masking_stream_masks_what_passes_through(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_TOKEN", SECRET)
    stream = MaskingStream(sys.stdout, reports=False)
    assert stream.write(f"key={SECRET}\n") == len(f"key={SECRET}\n")
    assert capsys.readouterr().out == "key=***\n"


def test_error_lines_never_show_what_an_environment_interpolation_resolved_to(tmp_path: Path) -> None:
    home = str(tmp_path / "not-a-number")
    done = run_cli([*QUICK, "optim.lr=${oc.env:SOME_DIR}"], tmp_path, env={"SOME_DIR": home})
    assert done.returncode == 2
    assert len(done.stderr_lines) == 1 and done.stderr_lines[0].startswith("typedexp: error: optim.lr=***")
    assert "not-a-number" not in done.stderr


# In process, rule by rule (the CLI routes above run in subprocesses).
NONE = AllowList()
NARROW = f"{__name__}.Narrow"  # importable: the guard resolves what it permits
TYPED = AllowList.parse([NARROW])


def rules(typed: AllowList = NONE) -> Rules:
    own = AllowList(frozenset({"typedexp.specs.models.MLP"})) | typed
    return Rules(typed, own, AllowList(frozenset({BASIC_LAUNCHER})) | typed)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"hydra": {"job_logging": {"handlers": {"h": {"class": "tempfile.mkdtemp"}}}}},
         r"^hydra.job_logging.handlers.h.class=tempfile.mkdtemp: refused, configs may only build allowed objects "
         r"\(logging's own handlers and formatters and what allowed_targets=\[...\] names"),
        ({"hydra": {"hydra_logging": {"formatters": {"f": {"()": "os.system"}}}}},
         r"^hydra.hydra_logging.formatters.f.\(\)=os.system: refused, .*\(os is never allowed\)$"),
        ({"hydra": {"job_logging": {"handlers": {"h": {"stream": "ext://os.environ"}}}}},
         r"^hydra.job_logging.handlers.h.stream=ext://os.environ: refused, a logging config may only name "
         r"ext://sys.stdout or ext://sys.stderr$"),
        ({"hydra": {"job_logging": {"handlers": {"h": {"filename": "/tmp/x.log"}}}}},
         r"^hydra.job_logging.handlers.h.filename=/tmp/x.log: refused, log files are written inside the run "
         r"directory \(start the path with \$\{hydra\.runtime\.output_dir\}/, no \.\.\)$"),
        ({"hydra": {"job_logging": {"handlers": {"h": {"filename": "${hydra.runtime.output_dir}/../x.log"}}}}},
         r"log files are written inside the run directory"),
        ({"hydra": {"job_logging": {"handlers": {"h": {"filename": 3}}}}}, r"h.filename=3: refused"),
        ({"hydra": {"job": {"env_set": {"LD_PRELOAD": "x.so"}}}},
         r"^hydra.job.env_set.LD_PRELOAD: refused, a config may only set CUBLAS_WORKSPACE_CONFIG, CUDA_LAUNCH_BLOCKING, "
         r"CUDA_VISIBLE_DEVICES, MKL_NUM_THREADS, NCCL_DEBUG, OMP_NUM_THREADS, PYTORCH_CUDA_ALLOC_CONF, "
         r"TOKENIZERS_PARALLELISM; export other variables in your shell$"),
        ({"hydra": {"sweeper": {"params": {"hydra.verbose": "true,false"}}}},
         r"^hydra.sweeper.params.hydra.verbose: refused, a sweep cannot vary Hydra's settings or allowed_targets$"),
        ({"hydra": {"sweeper": {"params": {"+allowed_targets": "[a.b]"}}}}, r"a sweep cannot vary"),
        ({"hydra": {"callbacks": {"c": {"_target_": "mylib.Net"}}}},
         r"^hydra.callbacks.c._target_=mylib.Net: refused, .*the launchers, sweepers and callbacks installed Hydra "
         r"plugins register and what allowed_targets=\[...\] names on the command line; add allowed_targets=\[mylib.Net\]"),
        ({"model": {"_target_": "${oc.env:NO_SUCH_VARIABLE_HERE}"}},
         r"\(a target must be a qualified name written out, not an interpolation or a value\)$"),
        ({"model": {"_target_": 3}}, r"^model._target_=3: refused"),
        ({"allowed_targets": ["mylib.Net"], "model": {"_target_": "typedexp.specs.models.MLP"}},
         r"^allowed_targets=\['mylib.Net'\] is set by a config file or a run directory"),
    ],
)
def test_each_rule_refuses_with_its_line(node: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_composed(OmegaConf.create(node), rules())


def test_what_each_rule_lets_through() -> None:
    fine = {
        "allowed_targets": [NARROW],
        "model": {"_target_": NARROW, "inner": {"_target_": "typedexp.specs.models.MLP"}},
        "hydra": {
            "launcher": {"_target_": BASIC_LAUNCHER},
            "callbacks": {"c": {"_target_": NARROW}},
            "job_logging": {
                "formatters": {"f": {"()": "colorlog.ColoredFormatter"}},
                "handlers": {
                    "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
                    "file": {"class": "logging.FileHandler", "filename": "${hydra.runtime.output_dir}/job.log"},
                    "other": {"class": "logging.handlers.RotatingFileHandler", "filename": "${hydra:runtime.output_dir}/a.log"},
                },
            },
            "job": {"env_set": {"CUDA_VISIBLE_DEVICES": "0", "OMP_NUM_THREADS": "2"}},
            "sweeper": {"params": {"optim.lr": "0.1,0.01"}},
        },
    }
    check_composed(OmegaConf.create(fine), rules(TYPED))
    check_composed(OmegaConf.create({"model": {"_target_": "typedexp.specs.models.MLP"}, "allowed_targets": []}), rules())
    check_composed(OmegaConf.create({"model": {"_target_": "typedexp.specs.models.MLP", "x": "???"}}), rules())


def test_a_dict_made_by_an_interpolation_is_checked() -> None:
    created = {"model": {"_target_": "typedexp.specs.models.MLP", "extra": "${oc.create:{_target_: mylib.Evil}}"}}
    with pytest.raises(ConfigError, match=r"^model.extra._target_=mylib.Evil: refused"):
        check_composed(OmegaConf.create(created), rules())
    listed = {"layers": [{"_zen_target": "mylib.Evil"}]}
    with pytest.raises(ConfigError, match=r"^layers\[0\]._zen_target=mylib.Evil: refused"):
        check_composed(OmegaConf.create(listed), rules())


def test_registered_targets_split_the_store_s_groups_from_hydra_s() -> None:
    from hydra.core.plugins import Plugins

    from typedexp.app.config_guard import registered_targets
    from typedexp.app.store import register_configs

    register_configs()
    Plugins.instance()  # Hydra's plugins register their configs when Hydra starts, as it has by then
    own, plugins = registered_targets()
    assert {"typedexp.specs.models.MLP", "typedexp.specs.optim.SGD", "typedexp.specs.experiment.Experiment"} <= own.names
    assert "hydra._internal.core_plugins.basic_launcher.BasicLauncher" in plugins.names
    assert not any(name.startswith("hydra.") for name in own.names)
    # Of typedexp's own classes, hydra.* may name only its two callbacks (store.HYDRA_SETTINGS): the
    # sweep summary and the note of what a single run's dir holds before Hydra makes it (app/tidy.py).
    assert {name for name in plugins.names if name.startswith("typedexp.")} == {
        "typedexp.sweeps.summary.SweepSummary", "typedexp.app.tidy.NoteRunDir",
    }


def test_allow_list_union_and_entries() -> None:
    both = AllowList.parse(["a.b.C"]) | AllowList.parse(["d.e.*"])
    assert both.entries() == ["a.b.C", "d.e.*"]
    assert both.permits("d.e.F") and both.permits("a.b.C") and not both.permits("a.b.D")
    assert not AllowList.parse(["torch.*"]).permits("torch.load")  # never allowed, even listed
    with pytest.raises(ConfigError, match=r"^allowed_targets: os.system is refused \(os is never allowed\)$"):
        AllowList.parse(["os.system"])
    with pytest.raises(ConfigError, match=r"^allowed_targets: 'a..b' is not a qualified name"):
        AllowList.parse(["a..b"])


def test_secret_variables_are_those_named_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from typedexp.core.safety.secrets import is_secret_variable, mask_report, remember_env_value, secrets_by_variable

    for name in ("SWANLAB_API_KEY", "GITHUB_TOKEN", "db_password", "CLIENT_SECRET", "KEY"):
        assert is_secret_variable(name), name
    for name in ("HOME", "KEYS_DIR", "TOKENIZERS_PARALLELISM", "SECRETARY"):
        assert not is_secret_variable(name), name
    monkeypatch.setenv("SHORT_TOKEN", "12345")
    monkeypatch.setenv("LONG_TOKEN", "123456")
    found = secrets_by_variable()
    assert "LONG_TOKEN" in found and "SHORT_TOKEN" not in found
    remember_env_value("ab")  # too short to mask in every line
    remember_env_value("/some/dir")
    remember_env_value(None)
    assert mask_report("ab /some/dir 123456") == "ab *** ***"


def test_nesting_is_allowed_to_the_limit_and_refused_past_it() -> None:
    from typedexp.app.config_guard import MAX_DEPTH

    def nested(levels: int) -> dict[str, object]:
        node: dict[str, object] = {"leaf": 1}
        for _ in range(levels):
            node = {"n": node}
        return node

    check_composed(OmegaConf.create(nested(MAX_DEPTH)), rules())
    with pytest.raises(ConfigError, match="nests more than 64 levels"):
        check_composed(OmegaConf.create(nested(MAX_DEPTH + 1)), rules())


def test_the_exact_lines_for_a_task_target_and_a_copied_allow_list() -> None:
    with pytest.raises(ConfigError) as caught:
        check_composed(OmegaConf.create({"model": {"_target_": "mylib.Evil"}}), rules())
    assert str(caught.value) == (
        "model._target_=mylib.Evil: refused, configs may only build allowed objects (typedexp's own configs, "
        "specs registered from Python and what allowed_targets=[...] names on the command line; "
        "add allowed_targets=[mylib.Evil] to allow it)"
    )
    with pytest.raises(ConfigError) as caught:
        check_composed(OmegaConf.create({"allowed_targets": ["mylib.Net"]}), rules())
    assert str(caught.value) == (
        "allowed_targets=['mylib.Net'] is set by a config file or a run directory; only the command line "
        "(or launch()'s overrides) can extend the allow-list: type allowed_targets=[...] yourself if you trust "
        "what it names"
    )
    with pytest.raises(ConfigError) as caught:
        check_composed(OmegaConf.create({"model": {"_target_": "${oc.env:NO_SUCH_VARIABLE_HERE}"}}), rules())
    assert str(caught.value).startswith("model._target_=${oc.env:NO_SUCH_VARIABLE_HERE}: refused")


def test_wrappers_are_checked_at_any_depth_and_only_targets_are_collected() -> None:
    from typedexp.app.config_guard import targets_in

    deep = {"a": {"m": {"_target_": "typedexp.specs.models.MLP", "_zen_wrappers": ["tempfile.mkdtemp"]}}}
    with pytest.raises(ConfigError, match=r"^a.m._zen_wrappers\[0\]=tempfile.mkdtemp: refused"):
        check_composed(OmegaConf.create(deep), rules())
    found = targets_in(OmegaConf.create({"m": {"_target_": "x.Y", "act": "relu", "n": {"_zen_target": "x.Z"}}}))
    assert found == {"x.Y", "x.Z"}


def test_the_secret_masks_longest_first_whatever_their_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    from typedexp.core.safety.secrets import remember_env_value, report_secrets, secret_values

    monkeypatch.setenv("A_KEY", "zzzzzz")
    monkeypatch.setenv("B_TOKEN", "azzzzzzb")  # holds A_KEY's value; sorts after it by spelling
    assert secret_values()[:2] == ["azzzzzzb", "zzzzzz"]
    assert mask("azzzzzzb") == "***"
    short = "z" + token_hex(1)  # 3 characters, the shortest remembered; by spelling it sorts before the longer
    remember_env_value(short)
    remember_env_value(f"a{short}b")
    assert report_secrets().index(f"a{short}b") < report_secrets().index(short)
    from typedexp.core.safety.secrets import mask_report

    assert mask_report(f"a{short}b {short}") == "*** ***"


def test_redact_masks_every_string_in_containers_and_leaves_values_alone_without_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [name for name in __import__("os").environ if name.upper().endswith(("KEY", "TOKEN", "SECRET", "PASSWORD"))]:
        monkeypatch.delenv(name)
    value = {"a": ["x"], "b": {"c": "y"}}
    assert redact(value) is value  # nothing to mask: the same object back
    monkeypatch.setenv("MY_SECRET", SECRET)
    assert redact({"a": [f"x{SECRET}"], "b": {"c": SECRET}, "d": (SECRET, 3)}) == {
        "a": ["x***"], "b": {"c": "***"}, "d": ["***", 3]
    }


def test_the_refusal_of_a_typed_secret_names_the_key_and_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from typedexp.core.safety import refuse_secrets_in_overrides

    monkeypatch.setenv("MY_TOKEN", SECRET)
    refuse_secrets_in_overrides(["tracker.description=harmless"])
    with pytest.raises(ConfigError) as caught:
        refuse_secrets_in_overrides(["epochs=3", f"tracker.description=a=b{SECRET}"])
    assert str(caught.value) == (
        "tracker.description: the value contains MY_TOKEN; secrets are never put in configs "
        "(Hydra saves overrides in .hydra/); read it from the environment instead"
    )


def test_stdout_masks_the_secrets_it_was_made_with_and_stderr_also_environment_values(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typedexp.core.safety.secrets import remember_env_value

    monkeypatch.setenv("MY_TOKEN", SECRET)
    out, err = MaskingStream(sys.stdout, reports=False), MaskingStream(sys.stderr, reports=True)
    assert (out.encoding, err.fileno) == (sys.stdout.encoding, sys.stderr.fileno)  # the rest is the stream's
    remember_env_value("/home/someone/data")
    monkeypatch.setenv("LATER_TOKEN", "set-after-the-stream-was-made")
    out.write(f"{SECRET} /home/someone/data set-after-the-stream-was-made\n")
    err.write(f"{SECRET} /home/someone/data\n")
    captured = capsys.readouterr()
    assert captured.out == "*** /home/someone/data set-after-the-stream-was-made\n"  # secrets read once
    assert captured.err == "*** ***\n"


def test_every_log_record_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from typedexp.core.safety.secrets import mask_log_records

    monkeypatch.setenv("MY_TOKEN", SECRET)
    original = logging.getLogRecordFactory()
    try:
        mask_log_records()
        record = logging.getLogger("typedexp.test").makeRecord("t", logging.INFO, "f", 1, "key %s", (SECRET,), None)
        assert record.getMessage() == "key ***"
    finally:
        logging.setLogRecordFactory(original)


def test_masking_a_process_wraps_stdout_and_stderr_once_each_and_masks_log_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io
    import logging

    from typedexp.core.safety.secrets import mask_process_output, remember_env_value

    monkeypatch.setenv("MY_TOKEN", SECRET)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)  # put back after the test, as the factory is below
    monkeypatch.setattr(sys, "stderr", err)
    original = logging.getLogRecordFactory()
    try:
        mask_process_output()
        wrapped = (sys.stdout, sys.stderr)
        mask_process_output()  # a second call (a job process after the CLI's own) wraps nothing again
        assert (sys.stdout, sys.stderr) == wrapped and isinstance(sys.stdout, MaskingStream)
        remember_env_value("/home/someone/mask-process")
        print(SECRET, "/home/someone/mask-process")
        print(SECRET, "/home/someone/mask-process", file=sys.stderr)
        record = logging.getLogger("typedexp.test").makeRecord("t", logging.INFO, "f", 1, "key %s", (SECRET,), None)
        assert record.getMessage() == "key ***"
    finally:
        logging.setLogRecordFactory(original)
    assert out.getvalue() == "*** /home/someone/mask-process\n"  # stdout: secrets only
    assert err.getvalue() == "*** ***\n"  # stderr: reports mask environment values too


# Issue 22, part 3: an allowed module is not an allowed object. `hostile_lib.models.*` is on the
# list; the module imports things it does not define. Each attack below would leave a mark in the
# working dir (a copied file, a truncated file, a pwned* dir) if what it names were called.
HOSTILE_MODULE = '''\
import builtins
import functools
import os
import shutil
import tempfile
from dataclasses import dataclass
from shutil import copyfile as f
from tempfile import mkdtemp as mk

open = builtins.open
eval = builtins.eval
p = functools.partial(tempfile.mkdtemp, dir=".", prefix="pwned")


@dataclass(frozen=True)
class Flat:
    """A schedule defined here: the learning rate never changes."""

    def build(self, optimizer, *, epochs, steps_per_epoch):
        return None

    def make_dir(self):
        return tempfile.mkdtemp(dir=".", prefix="pwned")


make_dir = Flat().make_dir
'''
ALLOW_HOSTILE = "allowed_targets=[hostile_lib.models.*]"
MKDTEMP = "+schedule.dir=.", "+schedule.prefix=pwned"


@pytest.fixture(scope="module")
def hostile_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    (root / "hostile_lib").mkdir()
    (root / "hostile_lib" / "__init__.py").write_text("")
    (root / "hostile_lib" / "models.py").write_text(HOSTILE_MODULE)
    return root


@pytest.fixture
def hostile(hostile_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working dir with two files to copy or truncate, and hostile_lib importable."""
    monkeypatch.syspath_prepend(str(hostile_project))
    (tmp_path / "victim.txt").write_text("keep me")
    return tmp_path


def marks(cwd: Path) -> list[str]:
    """What a called target would have left: a copy, a truncated victim, a pwned* directory."""
    found = [path.name for path in cwd.iterdir() if path.name.startswith(("pwned", "copied"))]
    return found + ([] if (cwd / "victim.txt").read_text() == "keep me" else ["victim.txt truncated"])


def test_a_function_imported_into_an_allowed_module_is_not_called(hostile_project: Path, tmp_path: Path) -> None:
    # The issue's reproduction, through the real command: shutil.copyfile reached as hostile_lib.models.f.
    (tmp_path / "victim.txt").write_text("keep me")
    (tmp_path / "hostile_lib").symlink_to(hostile_project / "hostile_lib")  # `python -m` imports from the cwd
    args = [*QUICK, ALLOW_HOSTILE, "schedule._target_=hostile_lib.models.f", "+schedule._args_=[victim.txt,copied.txt]"]
    done = run_cli(args, tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr_lines == [
        "typedexp: error: schedule._target_=hostile_lib.models.f: refused, configs may only build allowed objects "
        "(it is shutil.copyfile, and shutil is never allowed)"
    ]
    assert marks(tmp_path) == [] and not (tmp_path / "outputs").exists()


HOSTILE_ROUTES = [
    # (overrides, the error line after "typedexp: error: ")
    (["schedule._target_=hostile_lib.models.mk", *MKDTEMP],
     "schedule._target_=hostile_lib.models.mk: refused, configs may only build allowed objects (it is "
     "tempfile.mkdtemp, which hostile_lib.models.* does not cover: a module's .* allows the classes and functions "
     "defined in it, not what it imports; add allowed_targets=[tempfile.mkdtemp] to allow it)"),
    (["schedule._target_=hostile_lib.models.open", "+schedule._args_=[victim.txt,w]"],
     "schedule._target_=hostile_lib.models.open: refused, configs may only build allowed objects "
     "(it is io.open, and io is never allowed)"),
    (["schedule._target_=hostile_lib.models.eval", "+schedule._args_=['open(\"victim.txt\",\"w\")']"],
     "schedule._target_=hostile_lib.models.eval: refused, configs may only build allowed objects "
     "(it is builtins.eval, and builtins is never allowed)"),
    (["schedule._target_=hostile_lib.models.p"],
     "schedule._target_=hostile_lib.models.p: refused, configs may only build allowed objects (it is "
     "tempfile.mkdtemp, which hostile_lib.models.* does not cover"),
    (["schedule._target_=hostile_lib.models.mk", "+schedule._partial_=true", *MKDTEMP],
     "schedule._target_=hostile_lib.models.mk: refused, configs may only build allowed objects (it is tempfile.mkdtemp"),
    (["schedule._target_=hostile_lib.models.make_dir"],
     "schedule._target_=hostile_lib.models.make_dir: refused, configs may only build allowed objects (it is "
     "hostile_lib.models.Flat.make_dir, which hostile_lib.models.* does not cover"),
    (["schedule._target_=hostile_lib.models.os"],
     "schedule._target_=hostile_lib.models.os: refused, configs may only build allowed objects "
     "(it is the module os, not a class or function)"),
    (["schedule._target_=hostile_lib.models.shutil.copyfile", "+schedule._args_=[victim.txt,copied.txt]"],
     "schedule._target_=hostile_lib.models.shutil.copyfile: refused, configs may only build allowed objects "
     "(typedexp's own configs"),
    (["schedule._target_=hostile_lib.models.builtins.eval"],
     "schedule._target_=hostile_lib.models.builtins.eval: refused, configs may only build allowed objects "
     "(typedexp's own configs"),
    (["schedule._target_=hostile_lib.models.Flat.make_dir"],
     "schedule._target_=hostile_lib.models.Flat.make_dir: refused, configs may only build allowed objects "
     "(typedexp's own configs"),
    (["+schedule.inner={_target_:hostile_lib.models.mk,dir:.,prefix:pwned}"],
     "schedule.inner._target_=hostile_lib.models.mk: refused, configs may only build allowed objects (it is tempfile.mkdtemp"),
    (["+schedule.inner=[{_zen_target:hostile_lib.models.p}]"],
     "schedule.inner[0]._zen_target=hostile_lib.models.p: refused, configs may only build allowed objects (it is tempfile.mkdtemp"),
    (["+hydra.callbacks.spy={_target_:hostile_lib.models.p}"],
     "hydra.callbacks.spy._target_=hostile_lib.models.p: refused, configs may only build allowed objects (it is tempfile.mkdtemp"),
    # A name listed exactly is trusted for what it resolves to, but never for a never-allowed module.
    (["allowed_targets=[hostile_lib.models.f]", "schedule._target_=hostile_lib.models.f",
      "+schedule._args_=[victim.txt,copied.txt]"],
     "schedule._target_=hostile_lib.models.f: refused, configs may only build allowed objects "
     "(it is shutil.copyfile, and shutil is never allowed)"),
    (["schedule._target_=hostile_lib.models.nothing"],
     "schedule._target_=hostile_lib.models.nothing: cannot be imported (No module named 'hostile_lib.models.nothing'; "
     "'hostile_lib.models' is not a package)"),
]


@pytest.mark.parametrize(("overrides", "line"), HOSTILE_ROUTES, ids=[" ".join(o) for o, _ in HOSTILE_ROUTES])
def test_an_allowed_module_admits_only_what_it_defines(hostile: Path, overrides: list[str], line: str) -> None:
    allow = [] if any(o.startswith("allowed_targets=") for o in overrides) else [ALLOW_HOSTILE]
    done = run_main([*QUICK, *allow, *overrides], hostile)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr_lines) == 1 and "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.stderr_lines[0].startswith(f"typedexp: error: {line}"), done.stderr
    assert marks(hostile) == [] and not (hostile / "outputs").exists()


def test_what_an_allowed_module_defines_still_builds(hostile: Path) -> None:
    done = run_main([*QUICK, ALLOW_HOSTILE, "schedule._target_=hostile_lib.models.Flat"], hostile)
    assert done.returncode == 0, done.stderr
    assert "_target_: hostile_lib.models.Flat" in (next(hostile.glob("outputs/*/*/.hydra/config.yaml"))).read_text()
    # ... and what it imports, once that object is listed by its own name (--cfg: checked, not run).
    listed = ["allowed_targets=[hostile_lib.models.*,tempfile.mkdtemp]", "schedule._target_=hostile_lib.models.mk"]
    done = run_main(["--cfg", "job", *QUICK, *listed, *MKDTEMP], hostile)
    assert done.returncode == 0 and "_target_: hostile_lib.models.mk" in done.stdout, done.stderr
    assert marks(hostile) == []


def test_where_an_object_is_defined() -> None:
    import functools
    import os
    import tempfile

    from typedexp.core.safety.allowlist import defined_as

    assert defined_as(functools.partial(functools.partial(tempfile.mkdtemp), dir=".")) == "tempfile.mkdtemp"
    assert defined_as(str.join) == "builtins.str.join"
    assert defined_as({}.get) == "builtins.builtin_function_or_method"
    assert defined_as(os) == "os" and defined_as(os.system) == "posix.system"
    assert defined_as(MLP) == "typedexp.specs.models.MLP" and defined_as(MLP().build) == "typedexp.specs.models.MLP.build"
    assert defined_as(torch.nn.Linear) == "torch.nn.modules.linear.Linear"
    assert defined_as(MLP()) == "typedexp.specs.models.MLP"  # an instance: calling it runs its class's code


# Issue 22, part 5: a secret in a file name. Masking covers text, not the names Hydra and the run
# give files and directories, so a secret that reaches a name or a path is refused.
def test_a_preset_naming_the_job_after_the_api_key_is_refused_and_names_nothing(tmp_path: Path) -> None:
    (tmp_path / "presets" / "experiment").mkdir(parents=True)
    (tmp_path / "presets" / "experiment" / "leaky.yaml").write_text(
        "# @package _global_\nhydra:\n  job:\n    name: ${oc.env:SWANLAB_API_KEY}\n"
    )
    done = run_cli(["--config-dir", "presets", *QUICK, "+experiment=leaky"], tmp_path, env={"SWANLAB_API_KEY": SECRET})
    assert done.returncode == 2 and SECRET not in done.stdout + done.stderr
    assert done.stderr_lines == [
        "typedexp: error: hydra.job.name: refused, its value holds the secret in SWANLAB_API_KEY, and a name or path "
        "is never masked (files, directories and jobs are named after it); keep secrets out of names and paths"
    ]
    assert not (tmp_path / "outputs").exists()
    assert not [path for path in tmp_path.rglob("*") if SECRET in path.name]


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["hydra.run.dir=outputs/${oc.env:MY_TOKEN}"], "hydra.run.dir"),
        (["hydra.output_subdir=meta-${oc.env:MY_TOKEN}"], "hydra.output_subdir"),
        (["tracker=offline", "tracker.log_dir=logs/${tracker.description}", "tracker.description=${oc.env:MY_TOKEN}"],
         "tracker.log_dir"),
        (["-m", "hydra.sweep.subdir=${hydra.job.override_dirname}", "tracker.description=${oc.env:MY_TOKEN}", "seed=1,2"],
         "hydra.sweep.subdir"),
        (["-m", "hydra.sweep.dir=sweeps/${oc.env:MY_TOKEN}", "seed=1,2"], "hydra.sweep.dir"),
        (["dataset=mnist", "dataset.root=${oc.env:MY_TOKEN}"], "dataset.root"),
    ],
    ids=["run dir", "output_subdir", "tracker log dir via another field", "sweep subdir", "sweep dir", "dataset root"],
)
def test_a_secret_in_any_name_or_path_is_refused_before_anything_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], where: str
) -> None:
    monkeypatch.setenv("MY_TOKEN", SECRET)
    flags = [arg for arg in args if arg.startswith("-")]
    done = run_main([*flags, *QUICK, *[arg for arg in args if arg not in flags]], tmp_path)
    assert done.returncode == 2 and len(done.stderr_lines) == 1, done.stderr
    assert done.stderr_lines[0].startswith(f"typedexp: error: {where}: refused, its value holds the secret in MY_TOKEN")
    assert SECRET not in done.stdout + done.stderr
    assert not list(tmp_path.iterdir())  # no run dir, no sweep dir, no tracker log dir


def test_an_environment_value_that_is_no_secret_still_names_a_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRATCH", str(tmp_path / "scratch"))
    monkeypatch.setenv("MY_TOKEN", SECRET)  # and a secret elsewhere than in a name is still fine (masked)
    done = run_main([*QUICK, "hydra.run.dir=${oc.env:SCRATCH}/run", "tracker.description=${oc.env:MY_TOKEN}"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "scratch" / "run" / "model.pt").is_file()


@pytest.mark.parametrize(
    ("where", "names"),
    [("resume", True), ("hydra.job.name", True), ("tracker.log_dir", True), ("hydra.sweep.dir", True),
     ("tracker.description", False), ("hydra.job.override_dirname", False), ("model.hidden", False)],
)
def test_which_leaves_name_files_is_read_from_their_last_key(where: str, names: bool) -> None:
    """A top-level field (``resume``) counts too: the last key is the whole name there."""
    from typedexp.core.safety.secrets import names_files

    assert names_files(where) is names


def test_a_secret_in_a_name_is_refused_in_one_exact_line() -> None:
    from typedexp.core.safety.secrets import refuse_secret_in_name

    refuse_secret_in_name("tracker.description", "sk-live-123", {"SWANLAB_API_KEY": "sk-live-123"})  # text: masked elsewhere
    with pytest.raises(ConfigError) as raised:
        refuse_secret_in_name("hydra.job.name", "run-sk-live-123", {"SWANLAB_API_KEY": "sk-live-123"})
    assert str(raised.value) == (
        "hydra.job.name: refused, its value holds the secret in SWANLAB_API_KEY, and a name or path is never masked "
        "(files, directories and jobs are named after it); keep secrets out of names and paths"
    )
