"""What TensorBoard shows: the tags of each split and their groups, the learning rate with and without a scheduler,
the HParams columns as TensorBoard's own HParams backend builds them from an IMDB and two POS runs loaded together,
the settings' types and order, and the test figures (folded classes named, zero bars drawn, sizes)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from conftest import REPO, add_unseen_test_words, make_imdb_tree, make_pos_dir
from hydra import compose, initialize_config_dir

from seqlab.board import FIRST_SETTINGS, board_tag, hparam_name, settings_changed_by
from seqlab.models.figures import WIDTH, ZERO, confusion_matrix_figure, confusion_table, per_class_accuracy_figure

SMALL = ["model.hidden_size=8", "model.embedding_dim=8", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
         "trainer.log_every_n_steps=1", "threads=1"]
POS_CURVES = {"acc/train", "acc/val", "macro_f1/val", "loss/train", "loss/train_step", "loss/val"}
TRAINING = {"training/lr", "training/tokens_per_s", "training/epoch"}


def run(tmp: Path, name: str, *overrides: str) -> tuple[Path, dict]:
    """Train one tiny run into tmp/logs/<name> (its TensorBoard events directly there); (event dir, metrics)."""
    out = tmp / "logs" / name
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, *SMALL, f"paths.cache_dir={tmp / 'cache'}",
                                          f"paths.output_dir={out}"])
    from seqlab.train import train

    metrics = train(cfg)
    (events,) = {p.parent for p in out.rglob("events.out.tfevents.*")}
    return events, metrics


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """A POS run with unseen test words, a POS run without (its OOV accuracy undefined), an IMDB run with a
    learning-rate schedule; each with its TensorBoard events."""
    tmp = tmp_path_factory.mktemp("tb")
    oov = make_pos_dir(tmp / "ewt_oov")
    add_unseen_test_words(oov)
    plain = make_pos_dir(tmp / "ewt_plain")
    imdb = make_imdb_tree(tmp / "imdb")
    return {
        "pos": run(tmp, "pos", "data=pos", f"data.root={oov}", "data.download=false", "trainer.limit_train_batches=1"),
        "pos_no_oov": run(tmp, "pos_no_oov", "data=pos", f"data.root={plain}", "data.download=false"),
        "imdb": run(tmp, "imdb", "data=imdb", f"data.root={imdb}", "data.download=false", "model.optimizer.lr=0.01",
                    "model.scheduler={_target_: torch.optim.lr_scheduler.StepLR, step_size: 1, gamma: 0.5}"),
    }


def accumulator(events: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def hparams_view(logdir: Path):
    """TensorBoard's HParams backend over `logdir`: (experiment, session groups by run name), as the dashboard
    receives them."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    tb = backend_context.Context(base_plugin.TBContext(
        logdir=str(logdir), multiplexer=mux, data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir))))
    ctx = context.RequestContext()
    experiment = get_experiment.Handler(ctx, tb, "", api_pb2.GetExperimentRequest()).run()
    cols = [api_pb2.ColParams(hparam=h.name) for h in experiment.hparam_infos]
    cols += [api_pb2.ColParams(metric=m.name) for m in experiment.metric_infos]
    cols[0].order = api_pb2.ORDER_ASC  # sorting by a column works (one type per column)
    request = api_pb2.ListSessionGroupsRequest(col_params=cols, slice_size=100, allowed_statuses=[
        api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING])
    groups = list_session_groups.Handler(ctx, tb, "", request).run().session_groups
    return experiment, {g.name: g for g in groups}


def experiment_of(events: Path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(content)
            for tag, content in accumulator(events).PluginTagToContent("hparams").items()}
    return data["_hparams_/experiment"].experiment, data["_hparams_/session_start_info"].session_start_info


def test_lightning_names_become_metric_first_tags():
    assert board_tag("train/loss_step") == "loss/train_step" and board_tag("train/loss_epoch") == "loss/train"
    assert board_tag("train/acc") == "acc/train" and board_tag("val/macro_f1") == "macro_f1/val"
    assert board_tag("lr-Adam") == "training/lr" and board_tag("lr-SGD/pg2") == "training/lr/pg2"
    assert board_tag("epoch") == "training/epoch" and board_tag("train/tokens_per_s") == "training/tokens_per_s"
    assert board_tag("test/acc") is None and board_tag("summary/val_acc") == "summary/val_acc"


def test_tags_per_split_and_groups(runs):
    events, metrics = runs["pos"]
    acc = accumulator(events)
    scalars = set(acc.Tags()["scalars"])
    columns = {"val_acc", "test_acc", "test_macro_f1", "test_oov_acc", "wall_time_s", "num_parameters", "epochs",
               "test_loss"}
    assert scalars == POS_CURVES | TRAINING | {f"summary/{c}" for c in columns}  # no test/* or one-point charts
    # Time Series sorts groups by name and opens the first two: the task's metric and the loss
    assert sorted({t.split("/")[0] for t in scalars})[:2] == ["acc", "loss"]
    assert [e.step for e in acc.Scalars("acc/val")] == [e.step for e in acc.Scalars("loss/train")]  # per epoch
    assert max(e.value for e in acc.Scalars("training/epoch")) == 1  # epochs 0 and 1; testing logs no epoch point
    assert max(e.value for e in acc.Scalars("acc/val")) == pytest.approx(metrics["val_acc"])  # the selected one
    for column in columns:
        (point,) = acc.Scalars(f"summary/{column}")
        assert point.value == pytest.approx(metrics[column])
    assert {"test/confusion_matrix", "test/per_class_accuracy"} <= set(acc.Tags()["images"])
    text = acc.Tensors("summary/text_summary")[0].tensor_proto.string_val[0].decode().splitlines()
    table = dict(zip(text[0].strip("| ").split(" | "), text[2].strip("| ").split(" | ")))
    assert table["test_acc"] == f"{metrics['test_acc']:.4g}"
    assert table["num_parameters"] == f"{metrics['num_parameters']:,}"
    assert f"- best_checkpoint: `checkpoints/{Path(metrics['best_checkpoint']).name}`" in text


def test_learning_rate_is_logged_with_and_without_a_scheduler(runs):
    pos = [e.value for e in accumulator(runs["pos"][0]).Scalars("training/lr")]
    imdb = [e.value for e in accumulator(runs["imdb"][0]).Scalars("training/lr")]
    assert pos == pytest.approx([1e-3, 1e-3])  # Adam's default rate each epoch
    assert imdb == pytest.approx([0.01, 0.005])  # StepLR halves it after the first epoch


def test_hparams_columns_of_an_imdb_and_two_pos_runs_loaded_together(runs, tmp_path):
    logdir = runs["pos"][0].parents[2]  # logs/<name>/tensorboard/<run name>/events...
    experiment, groups = hparams_view(logdir)
    metrics = [m.display_name for m in experiment.metric_infos]
    assert {"val_acc", "test_acc", "test_macro_f1", "test_oov_acc", "test_loss", "num_parameters"} <= set(metrics)
    shown = {h.display_name: h for h in experiment.hparam_infos}
    assert {"model.scheduler", "trainer.limit_train_batches", "threads", "trainer.max_time", "data"} <= set(shown)
    by_run = {name.split("/")[0]: g for name, g in groups.items()}
    assert set(by_run) == {"pos", "pos_no_oov", "imdb"}

    def value(run_name, column):
        found = [m.value for m in by_run[run_name].metric_values if m.name.tag == f"summary/{column}"]
        return found[0] if found else None

    assert value("pos", "test_oov_acc") == pytest.approx(runs["pos"][1]["test_oov_acc"])
    assert math.isnan(value("pos_no_oov", "test_oov_acc"))  # undefined: NaN, the column stays
    assert value("imdb", "test_oov_acc") is None  # not a metric of classification: an empty cell
    name = {h.display_name: h.name for h in experiment.hparam_infos}
    assert by_run["imdb"].hparams[name["model.scheduler"]].string_value == "StepLR(step_size=1, gamma=0.5)"
    assert by_run["pos"].hparams[name["model.scheduler"]].string_value == "none"
    assert by_run["pos"].hparams[name["trainer.limit_train_batches"]].string_value == "1"
    assert by_run["imdb"].hparams[name["trainer.limit_train_batches"]].string_value == "all"

    # whichever run's experiment TensorBoard reads first: the same metric columns, those of its task kind first
    (pos, _), (pos2, _), (imdb, _) = (experiment_of(runs[k][0]) for k in ("pos", "pos_no_oov", "imdb"))
    assert [m.name.tag for m in pos.metric_infos] == [m.name.tag for m in pos2.metric_infos]
    assert {m.name.tag for m in pos.metric_infos} == {m.name.tag for m in imdb.metric_infos}
    assert [m.display_name for m in imdb.metric_infos][:3] == ["val_acc", "test_acc", "test_macro_f1"]
    assert [m.display_name for m in pos.metric_infos][:4] == ["val_acc", "test_acc", "test_macro_f1", "test_oov_acc"]
    assert [h.name for h in pos.hparam_infos] == [h.name for h in pos2.hparam_infos]


def test_settings_types_names_and_order(runs):
    experiment, start = experiment_of(runs["pos"][0])
    values = {h.display_name: start.hparams[h.name] for h in experiment.hparam_infos if h.name in start.hparams}
    assert values["model.bidirectional"].bool_value is True and values["data.lowercase"].WhichOneof("kind") == \
        "bool_value"
    assert values["model.hidden_size"].number_value == 8 and values["threads"].number_value == 1
    assert values["model.lr"].number_value == pytest.approx(1e-3) and values["model.optimizer"].string_value == "Adam"
    assert values["data"].string_value == "pos" and values["data.task"].string_value == "tagging"
    assert values["trainer.max_time"].string_value == "none" and values["trainer.precision"].string_value == "32-true"
    assert values["monitor"].string_value == "val/acc" and values["seed"].number_value == 42
    assert "data.max_length" not in values and "data.root" not in values  # unset numbers are empty; no locations
    assert all(h.display_name == h.name.split(" ", 1)[1] for h in experiment.hparam_infos)
    # HParams sorts by (differs, name) and ticks five: the names put FIRST_SETTINGS first, in order
    by_name = [h.display_name for h in sorted(experiment.hparam_infos, key=lambda h: h.name)]
    assert by_name[:len(FIRST_SETTINGS)] == list(FIRST_SETTINGS)
    assert by_name[len(FIRST_SETTINGS):] == sorted(by_name[len(FIRST_SETTINGS):])
    assert hparam_name("zz.unknown") > hparam_name("data.task")


def test_sweep_overrides_mark_the_settings_they_change():
    settings = dict.fromkeys(["data", "seed", "model.hidden_size", "model.lr", "model.optimizer", "model.backend",
                              "model.scheduler", "early_stopping", "data.max_length"])
    assert settings_changed_by({"model.hidden_size", "seed"}, settings) == {"model.hidden_size", "seed"}
    assert settings_changed_by({"model.optimizer.lr", "backend", "model.scheduler.factor", "early_stopping.patience"},
                               settings) == {"model.lr", "model.backend", "model.scheduler", "early_stopping"}
    assert settings_changed_by({"data", "model", "data.root"}, settings) == {"data"}  # groups, locations: not shown


def test_confusion_matrix_names_the_folded_classes_and_writes_only_notable_counts():
    names = [f"T{i}" for i in range(14)]
    support = torch.tensor([900, 800, 700, 600, 500, 400, 300, 200, 150, 120, 90, 60, 30, 10])
    cm = torch.diag(support - support // 10)
    cm[:, 0] += support // 10  # every class loses a tenth of its tokens to T0
    cm[1, 2] += 3  # a confusion of 3/803 tokens (< 2%): coloured, not written
    fig = confusion_matrix_figure(names, cm, top_k=10)
    footnotes = [t.get_text().replace("\n", " ").replace("\u00a0", " ") for t in fig.texts]
    assert footnotes == ["other: T10 (90), T11 (60), T12 (30), T13 (10)"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "other"
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "other (190)"
    written = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert written[(1, 1)] == "720" and written[(1, 0)] == "80" and (1, 2) not in written
    assert written[(10, 10)] == "171" and written[(10, 0)] == "19"  # other: folded diagonal, folded errors
    assert len(written) == 11 + 10  # the diagonal (with other) and the tenth of each class but T0 (its diagonal)
    assert all(t.get_fontsize() >= 7 for t in [*ax.texts, *fig.texts, *ax.get_xticklabels()])
    plt.close(fig)
    block = confusion_table(names, cm, top_k=10).splitlines()
    # a fixed-width block: the Text tab fits a Markdown table to the card and broke wide ones mid-number ("3,44" / "8")
    assert block[0] == block[-1] == "```"
    table = [line.split() for line in block[1:-1]]
    assert table[0] == ["true", "\\", "predicted", *names[:10], "other", "total"]
    assert table[2] == ["T1", "80", "720", "3", *["·"] * 8, "803"]
    assert table[-1] == ["other", "19", *["·"] * 9, "171", "190"]
    widths = {len(line) for line in block[1:-1]}
    assert len(widths) == 1 and block[3].index("720") + 3 == block[1].index(" T1 ") + 3  # right-aligned columns


def test_per_class_bars_mark_and_label_zero_accuracy():
    names, acc, support = ["NOUN", "VERB", "X", "SYM"], torch.tensor([0.9, 0.5, 0.0, 0.0]), torch.tensor([50, 30, 4, 0])
    fig = per_class_accuracy_figure(names, acc, support)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["NOUN", "VERB", "X", "SYM"]
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["90.0%  (50)", "50.0%  (30)", "0%  (4)", "no test tokens"]
    (mark,) = ax.lines  # the zero bar of X: a red mark on its row
    assert mark.get_color() == ZERO and list(mark.get_ydata()) == [2]
    assert [t.get_color() for t in ax.get_yticklabels()][2] == ZERO and ax.texts[2].get_color() == ZERO
    assert [p.get_width() for p in ax.patches] == pytest.approx([0.9, 0.5, 0.0, 0.0])
    plt.close(fig)


def test_logged_figures_are_sized_for_tensorboard(runs):
    import io

    from PIL import Image

    acc = accumulator(runs["pos"][0])
    sizes = {tag: Image.open(io.BytesIO(acc.Images(tag)[0].encoded_image_string)).size
             for tag in ("test/confusion_matrix", "test/per_class_accuracy")}
    # the Images tab shows an image 350 pixels wide, with nearest-neighbour scaling: drawn that wide, it is shown 1:1
    assert {width for width, _ in sizes.values()} == {350} == {round(WIDTH * 100)}, sizes
    table = acc.Tensors("test/confusion_matrix/text_summary")[0].tensor_proto.string_val[0].decode().splitlines()
    assert table[1].startswith("true \\ predicted ") and table[1].endswith(" total")
    assert {row.split("  ")[0] for row in table[2:-1]} == {"DET", "ADJ", "NOUN", "VERB", "PUNCT",
                                                           "(not in training)"}  # PROPN: test data only
