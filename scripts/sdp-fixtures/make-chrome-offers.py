"""Captures real offers from headless Chromium into Fixtures/sdp/chrome-*.sdp.

Needs Debian `chromium` + `chromium-driver` and selenium in the venv. Run from the package root:
    .venv/bin/python scripts/sdp-fixtures/make-chrome-offers.py
Serves this directory on 127.0.0.1 (getUserMedia needs a secure context; localhost counts).
"""
import functools
import http.server
import pathlib
import threading

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE.parents[1] / "Fixtures" / "sdp"

handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HERE))
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
threading.Thread(target=server.serve_forever, daemon=True).start()

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.set_script_timeout(60)
    driver.get(f"http://127.0.0.1:{server.server_address[1]}/chrome-offers.html")
    offers = driver.execute_async_script("const done = arguments[0]; window.makeAll().then(done, e => done({error: String(e)}));")
    if "error" in offers:
        raise SystemExit(offers["error"])
    print("Chromium", driver.capabilities.get("browserVersion"))
    OUT.mkdir(exist_ok=True)
    for name, sdp in offers.items():
        (OUT / f"chrome-{name}.sdp").write_text(sdp)
        print("wrote", f"chrome-{name}.sdp", len(sdp))
finally:
    driver.quit()
    server.shutdown()
