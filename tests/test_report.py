"""``detente report``: report.html of a real run, opened in headless Chromium; missing parts; errors.

The browser test needs Debian's ``chromium`` and the ``playwright`` package
(tests/browser.py). Without them it skips locally and fails under ``CI``.
"""

import json
import shutil

import pytest

from browser import ARTIFACTS, BROWSER_ARGS, CHROMIUM, browser_or_skip, loaded
from detente.agents import make_agents
from detente.cli import main
from detente.config import load_config
from detente.eval.tournament import cross_play
from detente.games import make_game
from detente.games.trust_split import MESSAGE as TAS_MESSAGE
from detente.policies.base import Policy
from detente.policies.scripted import make_scripted
from detente.report import (
    ReportError,
    curves_section,
    prepare_game,
    render_report,
    transcript_section,
    write_report,
)
from detente.rollout.play import play, transcript
from detente.runs import TranscriptLine, write_crossplay, write_game
from detente.train.llm import train_llm
from detente.train.tabular import train_tabular
from tiny_model import tiny_lm

LLM_FAST = ["agent.kind=llm", "game.name=trust_split", "train.lr=0.01", "agent.max_message_tokens=6",
            "train.iterations=1", "train.games_per_iteration=2", "credit.group_size=2",
            "game.params={n_rounds: 2}"]
MARKER = "detente-hostile-marker"
HOSTILE = (f'</script><script>window.pwned = 1</script><img src="http://192.0.2.1/x.png" '
           f'onerror="window.pwned = 2"><!-- {MARKER} & "quotes"')
"""Model output that is also markup: it must show as text, run nothing and load nothing."""


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A real tabular IPD run with its cross-play matrix.json, and a real tiny-LLM Trust-and-Split run.

    The tabular run folder also gets the LLM run's transcripts (``iter_0.jsonl``,
    2 games) and ``iter_1.jsonl``: one of those games with hostile text in a
    decision and a player name, so one page holds every part (the report reads
    each file on its own; tabular runs write no transcripts).
    """
    root = tmp_path_factory.mktemp("report")
    run, llm = root / "run", root / "llm"
    train_tabular(load_config(None, ["train.iterations=20", "train.games_per_iteration=16"]), run)
    agents = make_agents([f"run:{run}", "tft", "alld", "allc"], make_game("ipd"))
    result = cross_play(lambda: make_game("ipd"), agents, 8)
    write_crossplay(run, result.record, [])
    train_llm(load_config(None, LLM_FAST), llm, lm=tiny_lm())
    shutil.copytree(llm / "transcripts", run / "transcripts")
    game = json.loads((run / "transcripts" / "iter_0.jsonl").read_text().splitlines()[0])
    game["iteration"] = 1
    game["decisions"][0]["raw"] = HOSTILE
    game["players"][1] = HOSTILE
    (run / "transcripts" / "iter_1.jsonl").write_text(json.dumps(game) + "\n")
    write_report(run)
    return {"run": run, "llm": llm}


def test_page_shows_plots_heatmap_and_transcripts_and_loads_nothing(folders):
    sync_playwright = browser_or_skip()
    page_path = folders["run"] / "report.html"
    real = (folders["llm"] / "transcripts" / "iter_0.jsonl").read_text().splitlines()
    real = [json.loads(line) for line in real]

    requests, errors, dialogs = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")

            plots = page.locator("#curves img.plot")
            titles = [plots.nth(k).get_attribute("alt") for k in range(plots.count())]
            assert {"Reward per round", "Behaviour of the learner", "Policy entropy"} <= set(titles), titles
            for k in range(plots.count()):
                assert plots.nth(k).is_visible() and loaded(plots.nth(k)), titles[k]
            heatmap = page.locator("#heatmap img")
            assert heatmap.is_visible() and loaded(heatmap)
            behaviour = page.locator("#behaviour tbody tr")
            assert behaviour.count() == 4 and "tft" in behaviour.nth(1).inner_text()

            # the newest iteration opens first: its one game, whose markup shows as text and does nothing
            games, view = page.locator("#games button"), page.locator("#game-view")
            assert games.count() == 1
            assert view.locator("td.seat0 .raw").first.inner_text() == HOSTILE
            assert page.locator("#transcripts img, #transcripts script").count() == 0

            # a real game of the LLM run: both seats' rounds side by side
            page.select_option("#iteration", label="iteration 0 (2 games)")
            assert games.count() == len(real)
            assert view.locator("table.rounds").is_visible()
            first_raw = next(d["raw"] for d in real[0]["decisions"] if d["seat"] == 0)
            assert view.locator("td.seat0 .raw").first.inner_text() == first_raw
            assert view.locator("td.seat1 .raw").first.is_visible()
            page.check("#show-seen")  # what each seat was shown: the game's text, e.g. its hand
            assert "This round your hand is" in view.locator("td.seat1 details.seen pre").first.inner_text()

            # search filters the games; the iteration list counts the matches
            page.fill("#search", MARKER)
            assert games.count() == 0 and "No game in iteration 0 matches" in view.inner_text()
            page.select_option("#iteration", label="iteration 1 (1 of 1 games)")
            assert games.count() == 1
            assert view.locator("td.seat0 .raw mark").inner_text() == MARKER
            page.fill("#search", "no game says this")
            assert games.count() == 0
            page.fill("#search", "")
            page.select_option("#iteration", label="iteration 0 (2 games)")
            assert games.count() == 2

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
            assert page.evaluate("window.pwned") is None
        finally:
            browser.close()
    assert errors == [] and dialogs == []
    outside = [url for url in requests if url != page_path.as_uri() and not url.startswith("data:")]
    assert outside == [], f"the page requested {outside}"


class Says(Policy):
    """Writes ``text`` as its message and keeps 5 coins, whatever it is shown."""

    def __init__(self, text: str) -> None:
        self.name, self.text = "says", text

    def act(self, decisions):
        return [f"<<message_start>>{self.text}<<message_end>>" if d.spec == TAS_MESSAGE else "<keep coins=5>"
                for d in decisions]


def test_a_trust_and_split_message_that_is_a_script_shows_as_text_in_chromium(tmp_path):
    script = "<script>window.pwned=1</script>"
    game = make_game("trust_split", n_rounds=1)
    seating = (Says(script), make_scripted("greedy", game))
    episode, = play([game], [seating], [0])
    write_game(tmp_path, game, transcript(episode, seating, 0, seed=0))
    page_path = write_report(tmp_path)
    assert script not in page_path.read_text()

    sync_playwright = browser_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page()
            page.goto(page_path.as_uri())
            raws = page.locator("#game-view td.seat0 .raw")
            assert raws.first.inner_text() == f"<<message_start>>{script}<<message_end>>"
            assert page.locator("#game-view script").count() == 0
            assert page.evaluate("window.pwned") is None
        finally:
            browser.close()


def test_html_escapes_model_text_and_is_self_contained(folders):
    html = (folders["run"] / "report.html").read_text()
    assert "window.pwned = 1</script>" not in html and "<!-- " + MARKER not in html
    assert html.count("</script>") == 2  # the data block and the viewer's script, nothing from a transcript
    for remote in ("http://", "https://", "//cdn", "@import", "url("):
        assert remote not in html.replace('\\"http://192.0.2.1/x.png\\"', ""), remote


def test_llm_run_curves_show_learner_and_coplayer_and_name_what_is_missing(folders):
    curves = curves_section(folders["llm"])
    titles = [plot["title"] for plot in curves.plots]
    assert titles[0] == "Reward per round" and "Invalid-output rate" in titles
    assert curves.iterations == 1
    assert any("KL to the reference model" in note for note in curves.notes)  # kl_coef = 0: kl is None


def test_each_decision_gets_what_its_own_seat_was_shown_before_it(folders):
    line = (folders["llm"] / "transcripts" / "iter_0.jsonl").read_text().splitlines()[0]
    record = json.loads(line)
    game = prepare_game(TranscriptLine.model_validate_json(line))
    assert len(game["rounds"]) == 2 and game["chats"] == {} and game["after"] == {}
    for seat in (0, 1):
        chat = record["chats"][str(seat)]
        message, proposal = game["rounds"][0]["seats"][seat]
        assert message["seen"] == [chat[0]["content"]] and "This round your hand is" in chat[0]["content"]
        assert message["raw"].startswith("<<message_start>>")
        assert proposal["seen"] == [chat[2]["content"]] and "Propose how many coins" in chat[2]["content"]
        assert proposal["raw"].startswith("<keep coins=")
    assert game["rounds"][1]["rewards"] == record["round_rewards"][1]


def test_large_transcripts_keep_the_newest_iterations_and_say_so(folders):
    section = transcript_section(folders["run"], budget=1)
    assert [f["name"] for f in section.files] == ["iter_1.jsonl"]
    assert "the newest 1 of 2 iteration files are embedded" in section.notes[0]


def test_eval_folder_with_only_matrix_json_skips_the_rest_with_notes(folders, tmp_path):
    shutil.copy(folders["run"] / "matrix.json", tmp_path / "matrix.json")
    html = render_report(tmp_path)
    assert 'id="heatmap"' in html and 'id="behaviour"' in html
    assert "No metrics.jsonl in this folder" in html and "No transcripts/iter_N.jsonl" in html
    assert 'id="search"' not in html


def test_eval_transcripts_are_shown_as_the_cross_play_file(folders, tmp_path):
    shutil.copy(folders["run"] / "matrix.json", tmp_path / "matrix.json")
    shutil.copytree(folders["llm"] / "transcripts", tmp_path / "transcripts")
    (tmp_path / "transcripts" / "iter_0.jsonl").rename(tmp_path / "transcripts" / "crossplay.jsonl")
    section = transcript_section(tmp_path)
    assert [(f["name"], f["label"]) for f in section.files] == [("crossplay.jsonl", "cross-play")]
    assert section.n_games == 2
    assert 'id="search"' in render_report(tmp_path)


def test_broken_files_are_skipped_with_a_note_not_a_crash(tmp_path):
    (tmp_path / "matrix.json").write_text('{"agents": ["a", "b"], "mean_reward": [[1.0]]}')
    (tmp_path / "metrics.jsonl").write_text('{"iteration": 0, "reward/learner": 1.5}\nnot json\n'
                                            '{"iteration": 1, "reward_mean": 1.5}\n')
    (tmp_path / "transcripts").mkdir()
    (tmp_path / "transcripts" / "iter_0.jsonl").write_text('{"no": "decisions"}\n')
    html = render_report(tmp_path)
    assert "matrix.json could not be read (game: Field required)" in html
    assert "2 line(s) of metrics.jsonl could not be read" in html
    assert "1 transcript line(s) could not be read" in html and "The transcript files hold no games" in html
    assert html.count('class="plot"') == 1


def test_a_folder_with_none_of_the_files_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ReportError, match=r"neither a run folder nor an eval folder: it has no metrics"):
        render_report(tmp_path)
    with pytest.raises(ReportError, match="is not a folder"):
        render_report(tmp_path / "missing")


def test_report_command_writes_the_page_or_fails_with_one_line(folders, tmp_path, capsys):
    shutil.copy(folders["run"] / "matrix.json", tmp_path / "matrix.json")
    out = tmp_path / "page.html"
    assert main(["report", str(tmp_path), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.endswith("nowhere is not a folder") and "\n" not in err
