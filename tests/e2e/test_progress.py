"""Progress lines of long CLI work: drawn on a terminal (a tmux pane), absent when stderr is
a pipe or with --no-progress. Each run is a perplexity of ~10 chunks of SmolLM2 (~5 s)."""
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import GPL3, tessera_bin

# "perplexity  [###...]  30%  384/1280 tok  281 tok/s  ETA 0:03  chunk 3/10  ppl 24.3782"
LINE = re.compile(r"^perplexity .*?(\d+)/(\d+) tok\s.*?tok/s\s+(ETA \d+:\d\d|in [\d.]+ s)", re.M)


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    # ~1,300 tokens: 10 chunks of 128.
    p = tmp_path_factory.mktemp("progress") / "text.txt"
    p.write_bytes(GPL3.read_bytes()[:6000])
    return p


def ppl_args(model, text, *extra):
    return [tessera_bin(), "perplexity", "-m", str(model), "-f", str(text), "-c", "128", "-t",
            "2", *extra]


class Tmux:
    """A detached tmux server of our own (its own socket) running one command."""

    def __init__(self, argv):
        if shutil.which("tmux") is None:
            pytest.fail("tmux is not installed (make deps installs it)")
        self.sock = "tessera-test-" + uuid.uuid4().hex[:8]
        # The pane stays after the command ends, so its last screen can be read.
        cmd = " ".join(map(quote, argv)) + " 2>&1; echo EXIT=$?; sleep 60"
        self.tmux("new-session", "-d", "-x", "200", "-y", "30", cmd)

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "0")

    def close(self):
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True, timeout=10)

    def run_to_end(self, timeout=120):
        """Screens captured every 50 ms until the command has exited."""
        screens, deadline = [], time.time() + timeout
        while time.time() < deadline:
            s = self.screen()
            screens.append(s)
            if "EXIT=" in s:
                return screens
            time.sleep(0.05)
        raise AssertionError("the command did not end in time; last screen:\n" + screens[-1])


def quote(s):
    return "'" + str(s).replace("'", "'\\''") + "'"


def test_terminal_shows_an_advancing_progress_line(smollm2, text):
    t = Tmux(ppl_args(smollm2, text))
    try:
        screens = t.run_to_end()
    finally:
        t.close()
    final = screens[-1]
    assert "EXIT=0" in final, final
    seen = []  # (done, total) of the progress line, screen after screen
    for s in screens:
        for m in LINE.finditer(s):
            seen.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    assert seen, "no progress line on any screen; last:\n" + final
    total = seen[-1][1]
    assert total == 1280, seen[-1]
    during = sorted({d for d, _, when in seen if when.startswith("ETA") and d < total})
    # It advanced: at least two different counts below the total, each with an ETA.
    assert len(during) >= 2, f"progress did not advance on screen: {seen}"
    assert seen == sorted(seen, key=lambda x: x[0]), "progress went backwards"
    # The last state is the final line (100%, elapsed time), left on the screen once.
    assert seen[-1][0] == total and seen[-1][2].startswith("in "), seen[-1]
    assert len(LINE.findall(final)) == 1, final
    assert re.search(r"\]\s+100%", final), final
    # stdout shared the terminal: the running estimates still came, after the line.
    assert re.search(r"\[10\]\d+\.\d+,\s*\nPPL = ", final), final


def test_piped_run_has_no_progress(smollm2, text):
    p = subprocess.run(ppl_args(smollm2, text), capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    err = p.stderr.decode()
    assert "\r" not in err and "\x1b" not in err, repr(err)
    assert not LINE.search(err) and "ETA" not in err, err
    # Only the usual lines: tokenized ..., the summary.
    assert err.startswith("tokenized ") and "chunks, " in err, err
    out = p.stdout.decode()
    assert re.match(r"(\[\d+\]\d+\.\d+,){10}\nPPL = ", out), out


def test_no_progress_flag_on_a_terminal(smollm2, text):
    t = Tmux(ppl_args(smollm2, text, "--no-progress"))
    try:
        screens = t.run_to_end()
    finally:
        t.close()
    assert "EXIT=0" in screens[-1], screens[-1]
    assert not any(LINE.search(s) for s in screens), screens[-1]
    assert not any("ETA" in s for s in screens)
