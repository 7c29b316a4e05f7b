"""The report's Pointwise MI and Brackets sections, from small real runs: a lower bound, an upper bound and a
plug-in on two Gaussians, and a plug-in alone (no learned PMI, no bounds)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex

from harness import report, runner
from harness.executors import InlineExecutor
from harness.report import figures, pmi
from harness.store import Store
from harness.suite import load

CRITIC = "hidden = 16, layers = 1, checkpoint_every = 10, interval_resamples = 0"
BOUNDED = f"""
[suite]
name = "pmi_bounded"
seeds = [0, 1]
device = "cpu"

[budget]
samples = [600]
steps = 30
batch_size = 64

[[estimators]]
name = "nwj"
label = "lower_bound"
params = {{ {CRITIC}, embed_dim = 4 }}

[[estimators]]
name = "club"
label = "upper_bound"
params = {{ {CRITIC} }}

[[estimators]]
name = "ksg"

[[tasks]]
name = "gaussian"
grid = {{ mi = [0.5, 1.0] }}
params = {{ dim = 1 }}
"""
PLAIN = """
[suite]
name = "pmi_plain"
seeds = [0]
device = "cpu"

[budget]
samples = [300]

[[estimators]]
name = "ksg"

[[tasks]]
name = "gaussian"
params = { dim = 1, mi = 0.5 }
"""
TASKS = ["gaussian(dim=1, mi=0.5)", "gaussian(dim=1, mi=1.0)"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The store of both runs and where their reports went: {"store", "bounded", "plain"}."""
    root = tmp_path_factory.mktemp("pmi_report")
    store = Store(root / "results.sqlite")
    reports = {}
    for name, text in [("pmi_bounded", BOUNDED), ("pmi_plain", PLAIN)]:
        path = root / f"{name}.toml"
        path.write_text(text)
        runner.run(load(path), store, executor=InlineExecutor(), show_progress=False)
        reports[name] = report.build(store, name, root / "reports")
    yield {"store": store, "bounded": reports["pmi_bounded"], "plain": reports["pmi_plain"]}
    store.close()


def headings(out) -> list[str]:
    return [line for line in (out / "index.md").read_text().splitlines() if line.startswith("#")]


def test_the_pointwise_mi_and_brackets_sections_appear_in_order_with_their_figures(runs):
    out = runs["bounded"]
    found = headings(out)
    expected = ["## Brackets", "## Pointwise MI", "### Learned PMI accuracy",
                *(f"### Learned against true PMI: {task}" for task in TASKS)]
    assert [h for h in found if h in expected] == expected
    assert found.index("## Brackets") > found.index("## Interval coverage")
    assert found.index(f"### Learned against true PMI: {TASKS[1]}") < found.index(f"## {report.TIMING_HEADING}")
    for figure in ["brackets.png", "pmi_profiles.png", "pmi/gaussian_dim_1_mi_0_5.png",
                   "pmi/gaussian_dim_1_mi_1_0.png"]:
        assert (out / figure).stat().st_size > 10_000
    page = (out / "index.md").read_text()
    assert "![Learned against true PMI: gaussian(dim=1, mi=0.5)](pmi/gaussian_dim_1_mi_0_5.png)" in page
    assert "nan" not in page
    html = (out / "index.html").read_text()
    assert html.count("<h3 ") == 3 and html.count("data:image/png;base64,") >= 5
    toc = html[html.index("<nav>"):html.index("</nav>")]
    assert "Pointwise MI" in toc and "Learned PMI accuracy" not in toc  # parts of a section stay out of it


def test_a_run_without_learned_pmi_or_bounds_has_neither_section(runs):
    out = runs["plain"]
    found = headings(out)
    assert not [h for h in found if "PMI" in h or "Pointwise" in h or "Brackets" in h]
    assert not (out / "pmi_profiles.png").exists() and not (out / "brackets.png").exists()
    assert not (out / pmi.SCATTER_FOLDER).exists()


def cells_of(runs, run="pmi_bounded"):
    return runs["store"].cells(run)


def test_the_profiles_have_a_panel_per_task_centred_on_its_mi(runs):
    profiles = pmi.task_profiles(cells_of(runs))
    assert list(profiles) == TASKS and all(len(v) == pmi.PROFILE_SAMPLES for v in profiles.values())
    drawn = figures.pmi_profiles(profiles)
    for task, truth in zip(TASKS, [0.5, 1.0], strict=True):
        ax = drawn.panels[task]
        (line,) = ax.lines
        assert line.get_xdata()[0] == pytest.approx(truth, abs=0.05)
        assert f"sd {profiles[task].std():.2f}" in ax.get_title()
    plt.close(drawn.figure)


def test_a_task_that_knows_no_pmi_gets_no_profile(runs):
    cells = cells_of(runs).copy()
    cells.loc[cells["data_label"] == TASKS[0], "data"] = "no_such_task"
    assert list(pmi.task_profiles(cells)) == TASKS[1:]


def test_the_accuracy_table_is_the_mean_rmse_over_seeds_of_the_estimators_that_learned_a_pmi(runs):
    cells = cells_of(runs)
    table = pmi.accuracy_table(pmi._learned(cells), pmi.task_profiles(cells))
    assert list(table.columns[:4]) == ["task", "n", "pmi_sd", "lowest"]
    assert sorted(table.columns[4:]) == ["lower_bound", "upper_bound"]  # in the summary's order, not ksg
    assert table["task"].tolist() == TASKS
    for row in table.itertuples():
        for label in ["lower_bound", "upper_bound"]:
            own = cells[(cells["data_label"] == row.task) & (cells["method_label"] == label)]
            assert len(own) == 2
            assert getattr(row, label) == pytest.approx(np.mean([m["pmi_rmse"] for m in own["metrics"]]))
        assert row.lowest == ("lower_bound" if row.lower_bound < row.upper_bound else "upper_bound")


def test_each_scatter_panel_is_the_lowest_seed_of_its_estimator(runs, tmp_path):
    cells = cells_of(runs)
    pmi.pmi_sections(cells, tmp_path)
    own = cells[(cells["data_label"] == TASKS[0]) & (cells["method_label"] == "upper_bound")]
    first = own.sort_values("seed").iloc[0]
    drawn = figures.pmi_scatter(TASKS[0], own.sort_values("seed").iloc[[0]], ["upper_bound"])
    ax = drawn.panels["upper_bound"]
    np.testing.assert_allclose(ax.collections[0].get_offsets(), first["diagnostics"]["pmi_pairs"])
    assert "seed 0" in ax.get_title() and ax.get_xlim() == ax.get_ylim()
    plt.close(drawn.figure)


def test_many_tasks_link_their_scatter_figures_instead_of_embedding_them(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(pmi, "MAX_EMBEDDED", 1)
    cells = cells_of(runs)
    sections = pmi.pmi_sections(cells, tmp_path)
    (linked,) = [s for s in sections if s.links]
    assert linked.image is None and [label for label, _ in linked.links] == TASKS
    assert all(path.parent == tmp_path / pmi.SCATTER_FOLDER and path.is_file() for _, path in linked.links)
    html = report.render_html("t", cells, sections, tmp_path)
    assert '<a href="pmi/gaussian_dim_1_mi_1_0.png">gaussian(dim=1, mi=1.0)</a>' in html
    markdown = report.render_markdown("t", cells, sections, tmp_path)
    assert "- [gaussian(dim=1, mi=0.5)](pmi/gaussian_dim_1_mi_0_5.png)" in markdown


def test_the_bracket_table_and_figure_place_each_bound_against_the_truth(runs):
    cells = cells_of(runs)
    ok = cells[cells["status"] == "ok"]
    points = pmi.bracket_points(ok)
    table = pmi.bracket_table(points)
    assert table["task"].tolist() == TASKS
    for row in table.itertuples():
        means = ok[ok["data_label"] == row.task].groupby("method_label")["estimate"].mean()
        assert row.lower_by == "lower_bound" and row.highest_lower == pytest.approx(means["lower_bound"])
        assert row.upper_by == "upper_bound" and row.lowest_upper == pytest.approx(means["upper_bound"])
        assert row.bracketed == ("yes" if row.highest_lower <= row.true <= row.lowest_upper else "no")
    drawn = figures.brackets(points)
    ax = drawn.panels[TASKS[1]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["lower_bound", "ksg", "upper_bound"]
    assert ax.lines[0].get_ydata()[0] == pytest.approx(1.0)  # the truth
    markers = {to_hex(line.get_color()): line.get_ydata()[0] for line in ax.lines if line.get_marker() == "o"}
    means = ok[ok["data_label"] == TASKS[1]].groupby("method_label")["estimate"].mean()
    assert markers == {figures.BOUND_COLOURS["lower"]: pytest.approx(means["lower_bound"]),
                       figures.BOUND_COLOURS["estimate"]: pytest.approx(means["ksg"]),
                       figures.BOUND_COLOURS["upper"]: pytest.approx(means["upper_bound"])}
    plt.close(drawn.figure)


def test_brackets_need_both_a_lower_and_an_upper_bound(runs, tmp_path):
    cells = cells_of(runs)
    assert pmi.bracket_sections(cells, tmp_path)
    no_upper = cells[cells["diagnostics"].map(lambda d: d.get("bound") != "upper")]
    assert pmi.bracket_sections(no_upper, tmp_path) == []
    assert pmi.bracket_sections(cells_of(runs, "pmi_plain"), tmp_path) == []


def test_scatter_file_names_are_safe_and_distinct():
    names = pmi.file_names(["Normal 5x5 (sparse)", "normal 5x5 sparse", "../..", "Asinh @ Student-t"])
    assert names == {"Normal 5x5 (sparse)": "normal_5x5_sparse.png", "normal 5x5 sparse": "normal_5x5_sparse_2.png",
                     "../..": "task.png", "Asinh @ Student-t": "asinh_student_t.png"}
