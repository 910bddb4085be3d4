"""The status page in a real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright) against a running `cvem run` on the oned double: it loads without any request
leaving the machine, shows the cloud's hosts and VMs, updates after a cycle, and a
screenshot is kept as a test artefact (printed; under $CLOUDVAMP_ARTEFACTS, by default
tmp/artefacts/ in the repository).

Needs chromium and the Python playwright package (scripts/setup installs both as root);
skips with a reason without them, fails instead under CI (CI=true)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

import pytest

from fe_support import GIB, ROOT, write_config

MIB = 1024
CHROMIUM = os.environ.get("CLOUDVAMP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
ARTEFACTS = os.environ.get("CLOUDVAMP_ARTEFACTS", os.path.join(ROOT, "tmp", "artefacts"))


def _browser_or_skip():
    why = None
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        why = "%s not installed (Debian package chromium; scripts/setup as root)" % CHROMIUM
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            why = "Python package playwright not installed (scripts/setup as root)"
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("browser test required under CI: " + why)
    pytest.skip(why)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def running_cvem(oned, tmp_path, auth_file):
    a = oned.add_host("kvm-a", total_mem_kib=16 * GIB)
    b = oned.add_host("kvm-b", total_mem_kib=16 * GIB)
    idle = [oned.add_vm("web-%d" % i, a, 4096, 4096) for i in range(3)]
    busy = oned.add_vm("db", b, 6144, 8192)
    legacy = oned.add_vm("legacy", b, 2048)            # no MEMORY_MAX: left alone
    oned.apply_demand(idle + [busy], [700 * MIB] * 3 + [5 * GIB])
    port = _free_port()
    config = write_config(tmp_path, extra="period_s = 1\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvem", "--endpoint", oned.endpoint, "--auth", auth_file,
         "--config", config, "run", "--metrics-address", "127.0.0.1:%d" % port],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stderr=subprocess.PIPE,
        universal_newlines=True)
    try:
        yield "http://127.0.0.1:%d" % port, {"hosts": (a, b), "idle": idle, "busy": busy,
                                              "legacy": legacy}, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_status_page_in_a_real_browser_shows_the_cloud_and_follows_cycles(running_cvem):
    _browser_or_skip()
    from playwright.sync_api import sync_playwright
    url, cloud, proc = running_cvem
    outside = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def only_cvem(route):   # nothing may come from the internet (no CDN)
                if urllib.parse.urlsplit(route.request.url).netloc != url[len("http://"):]:
                    outside.append(route.request.url)
                    return route.abort()
                return route.continue_()

            page.route("**/*", only_cvem)
            deadline = time.monotonic() + 30
            while True:   # cvem binds its address at start-up
                try:
                    page.goto(url + "/", wait_until="load")
                    break
                except Exception:
                    assert proc.poll() is None and time.monotonic() < deadline
                    time.sleep(0.2)
            _wait_until(lambda: _cycles(page) >= 1, 20)

            hosts = page.locator("#hosts tbody tr")
            assert sorted(hosts.evaluate_all("rows => rows.map(r => r.dataset.host)")) == \
                sorted(str(h) for h in cloud["hosts"])
            assert "kvm-a" in page.inner_text("#hosts") and "kvm-b" in page.inner_text("#hosts")
            vm_rows = page.locator("#vms tbody tr").evaluate_all(
                "rows => rows.map(r => [r.dataset.vm, r.innerText])")
            rows = {int(v): text for v, text in vm_rows}
            assert set(rows) == set(cloud["idle"] + [cloud["busy"], cloud["legacy"]])
            assert "MEMORY_MAX" in rows[cloud["legacy"]]          # why it is left alone
            assert "web-0" in rows[cloud["idle"][0]]
            assert page.locator("#reclaimed-graph").count() == 1

            # updates after a cycle: the idle VMs keep shrinking, the page follows
            first_vm = cloud["idle"][0]
            cell = "#vms tbody tr[data-vm='%d'] td:nth-child(6)" % first_vm
            before_cycles = _cycles(page)
            before_mib = page.inner_text(cell)
            _wait_until(lambda: _cycles(page) > before_cycles
                        and page.inner_text(cell) != before_mib, 20)
            assert int(page.inner_text(cell)) < int(before_mib)
            page.wait_for_selector("#actions tbody tr", timeout=10000)
            assert "shrink" in page.inner_text("#actions")
            page.wait_for_selector("#reclaimed-line", state="attached", timeout=10000)
            assert page.locator("#role").inner_text().startswith("SOLO")

            os.makedirs(ARTEFACTS, exist_ok=True)
            shot = os.path.join(ARTEFACTS, "status-page.png")
            page.screenshot(path=shot, full_page=True)
            print("status page screenshot: %s" % shot)
        finally:
            browser.close()
    assert not outside, outside
    assert os.path.getsize(shot) > 10000


def _cycles(page) -> int:
    return int(page.evaluate("Number(document.body.dataset.cycles || 0)"))


def _wait_until(condition, timeout_s: float) -> None:
    """Poll from the test's side: the page's CSP forbids the string evaluation that
    Playwright's wait_for_function uses, as it should."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the status page did not follow within %g s" % timeout_s
        time.sleep(0.2)
