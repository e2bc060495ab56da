"""Interop check: live aiortc and headless Chromium peers accept drtc's SDP answers.

For each scenario a real peer creates an offer; `swift test --filter answerOfferFromEnvironment`
answers it; the peer applies the answer with setRemoteDescription and must reach 'stable'
without error. Run from the package root:  .venv/bin/python scripts/sdp-fixtures/check-answers.py
"""
import asyncio
import functools
import http.server
import os
import pathlib
import subprocess
import tempfile
import threading

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent


def answer(offer_sdp: str) -> str:
    with tempfile.TemporaryDirectory() as d:
        offer, ans = pathlib.Path(d, "offer.sdp"), pathlib.Path(d, "answer.sdp")
        offer.write_text(offer_sdp)
        env = dict(os.environ, RTC_OFFER_FILE=str(offer), RTC_ANSWER_FILE=str(ans))
        subprocess.run(["swift", "test", "--filter", "answerOfferFromEnvironment"], cwd=ROOT, env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return ans.read_text()


async def aiortc_case(name, build):
    pc = RTCPeerConnection()
    build(pc)
    await pc.setLocalDescription(await pc.createOffer())
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer(pc.localDescription.sdp), type="answer"))
    print(f"aiortc {name}: {pc.signalingState}")
    ok = pc.signalingState == "stable"
    await pc.close()
    return ok


async def aiortc_all():
    results = [
        await aiortc_case("video-sendonly", lambda pc: pc.addTransceiver(VideoStreamTrack(), direction="sendonly")),
        await aiortc_case("audio+video sendonly", lambda pc: (pc.addTransceiver(AudioStreamTrack(), direction="sendonly"),
                                                            pc.addTransceiver(VideoStreamTrack(), direction="sendonly"))),
        await aiortc_case("viewer recvonly", lambda pc: (pc.addTransceiver("video", direction="recvonly"),
                                                       pc.addTransceiver("audio", direction="recvonly"))),
    ]
    return all(results)


CHROME_JS = """
const [kind, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const pc = new RTCPeerConnection({bundlePolicy: "max-bundle"});
  const s = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
  if (kind === "viewer") { pc.addTransceiver("audio", {direction: "recvonly"}); pc.addTransceiver("video", {direction: "recvonly"}); }
  else {
    pc.addTransceiver(s.getAudioTracks()[0], {direction: "sendonly", streams: [s]});
    pc.addTransceiver(s.getVideoTracks()[0], {direction: "sendonly", streams: [s],
      sendEncodings: kind === "simulcast" ? [{rid: "q", scaleResolutionDownBy: 4}, {rid: "h", scaleResolutionDownBy: 2}, {rid: "f"}] : undefined});
  }
  await pc.setLocalDescription(await pc.createOffer());
  window.pc = pc;
  done(pc.localDescription.sdp);
})().catch(e => done("ERROR " + e));
"""


def chrome_all():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HERE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    ok = True
    try:
        driver.set_script_timeout(60)
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/chrome-offers.html")
        for kind in ["sendonly", "simulcast", "viewer"]:
            offer = driver.execute_async_script(CHROME_JS, kind)
            assert not offer.startswith("ERROR"), offer
            result = driver.execute_async_script(
                "const done = arguments[1]; window.pc.setRemoteDescription({type: 'answer', sdp: arguments[0]})"
                ".then(() => done(window.pc.signalingState), e => done('ERROR ' + e));", answer(offer))
            print(f"chromium {kind}: {result}")
            ok = ok and result == "stable"
    finally:
        driver.quit()
        server.shutdown()
    return ok


if __name__ == "__main__":
    ok = asyncio.run(aiortc_all())
    ok = chrome_all() and ok
    raise SystemExit(0 if ok else 1)
