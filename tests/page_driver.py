"""Drive the web page in Debian's Chromium (Playwright) as a person would: upload a video,
analyze it, search, caption and ask, generate; a screenshot of each view. Used by the tests,
and runnable for the docs: python tests/page_driver.py URL VIDEO OUTDIR [API_KEY]."""

from __future__ import annotations

import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# Chromium's own background traffic is refused on a closed network: turn it off.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def drive(base: str, video: Path, out: Path, key: str | None = None, generate: bool = True) -> dict:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    seen, failed_requests = {}, []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 860})
        page.on("requestfailed", lambda r: failed_requests.append(r.url))
        page.goto(base)
        if key:
            page.fill("#api-key", key)
            page.dispatch_event("#api-key", "change")
        page.wait_for_function("document.querySelector('#models').textContent.includes('index')")
        page.set_input_files("#file", str(video))
        page.click("#analyze")
        page.wait_for_selector("#scenes figure", timeout=60000)
        page.wait_for_function("document.querySelector('#status').textContent.includes('scenes')")
        seen["probe"] = page.inner_text("#probe")
        seen["shots"] = page.locator("#shots figure").count()
        seen["scenes"] = page.locator("#scenes figure").count()
        seen["status"] = page.text_content("#status")
        page.screenshot(path=str(out / "serve_video.png"), full_page=True)

        page.click("nav >> text=Search")
        page.fill("#query", "a red circle moves left")
        page.click("#search-form button")
        page.wait_for_selector(".hit video", timeout=60000)
        page.wait_for_function("Array.from(document.querySelectorAll('.hit video')).every(v => v.readyState >= 2)", timeout=30000)
        seen["hits"] = page.locator(".hit").count()
        seen["hit_videos"] = page.evaluate("Array.from(document.querySelectorAll('.hit video')).map(v => v.videoWidth)")
        page.screenshot(path=str(out / "serve_search.png"), full_page=True)

        page.click("nav >> text=Ask")
        page.click("#caption")
        page.wait_for_function("document.querySelector('#caption-out').textContent.length > 0", timeout=60000)
        page.fill("#question", "What shape is it?")
        page.click("#ask-form button")
        page.wait_for_function("document.querySelector('#answer').textContent.length > 0", timeout=60000)
        seen["caption"], seen["answer"] = page.text_content("#caption-out"), page.text_content("#answer")
        page.screenshot(path=str(out / "serve_ask.png"), full_page=True)

        if generate:
            page.click("nav >> text=Generate")
            page.fill("#prompt", "a red circle moves left")
            page.fill("#steps", "8")
            page.click("#generate-form button")
            page.wait_for_selector(".job video", timeout=120000)
            page.wait_for_function("document.querySelector('.job video').readyState >= 2", timeout=30000)
            seen["generated_width"] = page.evaluate("document.querySelector('.job video').videoWidth")
            seen["job_title"] = page.text_content(".job div")
            page.screenshot(path=str(out / "serve_generate.png"), full_page=True)
        seen["error_shown"] = page.evaluate("document.querySelector('#status').className") == "error"
        browser.close()
    seen["failed_requests"] = failed_requests
    return seen


if __name__ == "__main__":
    print(drive(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None))
