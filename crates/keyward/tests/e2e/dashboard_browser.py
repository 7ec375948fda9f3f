"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

Run by `dashboard.rs` against the real binary. Environment: KEYWARD_URL, KEYWARD_EMAIL,
KEYWARD_PASSWORD, KEYWARD_SCREENSHOTS (a directory) and KEYWARD_CHROMIUM (the browser).
Prints OK last when every check passed; any failed check raises.
"""

import os
import re
import sys
import time

import requests
from playwright.sync_api import expect, sync_playwright

BASE = os.environ["KEYWARD_URL"]
EMAIL = os.environ["KEYWARD_EMAIL"]
PASSWORD = os.environ["KEYWARD_PASSWORD"]
SHOTS = os.environ["KEYWARD_SCREENSHOTS"]
CHROMIUM = os.environ.get("KEYWARD_CHROMIUM", "/usr/bin/chromium")
HOSTILE_NAME = "<script>alert(1)</script>"

expect.set_options(timeout=10_000)


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=False)


def step(text):
    print(f"- {text}", flush=True)


def authorize(api_key):
    """A request to the protected API through /v1/authorize, as a proxy would send it."""
    return requests.get(f"{BASE}/v1/authorize", headers={"X-Api-Key": api_key}, timeout=10)


def main():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        alerts = []
        page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
        csp_violations = []
        page.on(
            "console",
            lambda m: csp_violations.append(m.text)
            if "Content Security Policy" in m.text
            else None,
        )

        step("a logged-out page redirects to the login page")
        page.goto(f"{BASE}/developer/api-credentials")
        expect(page).to_have_url(re.compile(r"/login\?next="))
        shot(page, "login")

        step("a wrong password is refused with a message")
        page.fill("#email", EMAIL)
        page.fill("#password", "not the password at all")
        page.click("button[type=submit]")
        expect(page.locator("#login-error")).to_be_visible()

        step("logging in lands on API Credentials")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{BASE}/developer/api-credentials")
        expect(page.locator("h1")).to_have_text("API Credentials")
        expect(page.locator("#three-values")).to_be_visible()
        for column in ["Name", "API Key", "Status", "Scopes", "Owner", "Created", "Expires", "Last Used"]:
            expect(page.locator("th", has_text=column).first).to_be_visible()
        shot(page, "api-credentials")

        step("the form shows a server-side error beside the name")
        page.click("#create-credential")
        expect(page).to_have_url(f"{BASE}/developer/api-credentials/new")
        page.fill("#rate_limit", "0")
        page.click("#submit-credential")
        expect(page.locator("#name-error")).to_contain_text("must not be empty")
        expect(page.locator("#rate-error")).to_be_visible()
        expect(page.locator("#name")).to_have_attribute("aria-invalid", "true")
        shot(page, "create-form-errors")

        step("creating a credential shows its three values once, in a modal dialog")
        page.fill("#name", HOSTILE_NAME)
        page.fill("#description", "Made by the browser test")
        page.fill("#expires_on", "2099-12-31")
        page.fill("#rate_limit", "")
        page.click("#submit-credential")
        dialog = page.locator("#issued-dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("shown only this once")
        api_key = page.input_value("#api-key")
        client_id = page.input_value("#client-id")
        client_secret = page.input_value("#client-secret")
        assert api_key.startswith("kw_live_"), api_key
        assert client_id.startswith("organization_"), client_id
        assert client_secret.startswith("kw_cs_"), client_secret
        assert page.evaluate("document.querySelector('#issued-dialog').matches(':modal')")
        focused_inside = page.evaluate(
            "document.querySelector('#issued-dialog').contains(document.activeElement)"
        )
        assert focused_inside, "focus is not inside the dialog"
        page.keyboard.press("Escape")
        expect(dialog).to_be_visible()  # only its button closes it: the secrets stay until then
        page.click("[data-copy=api-key]")
        expect(page.locator("[data-copy=api-key] .copy-status")).to_have_text(
            re.compile("Copied|Press Ctrl\\+C")
        )
        shot(page, "credential-created-dialog")

        step("the API key and the client secret work at once")
        assert authorize(api_key).status_code == 200
        token = requests.post(
            f"{BASE}/v1/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, client_secret),
            timeout=10,
        )
        assert token.status_code == 200, token.text
        assert token.json()["token_type"].lower() == "bearer"

        step("closing the dialog leaves no secret in any page")
        page.click("#close-issued")
        expect(page).to_have_url(re.compile(r"/developer/api-credentials/api_key_"))
        page.reload()
        detail_url = page.url
        for url in [detail_url, f"{BASE}/developer/api-credentials"]:
            page.goto(url)
            html = page.content()
            assert api_key not in html and client_secret not in html, f"a secret is in {url}"
            source = context.request.get(url).text()
            assert api_key not in source and client_secret not in source

        step("a hostile name is text, not markup")
        page.goto(f"{BASE}/developer/api-credentials")
        expect(page.get_by_role("link", name=HOSTILE_NAME)).to_be_visible()
        source = context.request.get(page.url).text()
        assert HOSTILE_NAME not in source, "the name reached the page unescaped"
        assert "&#60;script&#62;alert(1)&#60;/script&#62;" in source
        page.goto(detail_url)
        expect(page.locator("h1")).to_have_text(HOSTILE_NAME)
        assert not alerts, f"a script ran: {alerts}"

        step("the detail page loads its usage chart")
        for _ in range(3):
            authorize(api_key)
        requests.get(f"{BASE}/v1/authorize", headers={"X-Api-Key": api_key + "x"}, timeout=10)
        time.sleep(1.5)  # usage counts are written every second
        page.reload()
        expect(page.locator("#usage-chart svg")).to_be_visible()
        expect(page.locator(".legend")).to_contain_text("Accepted")
        shot(page, "credential-detail")

        step("a form post without the CSRF token is refused")
        credential_path = detail_url.replace(BASE, "")
        refused = page.evaluate(
            """async (path) => {
                const r = await fetch(path + '/disable', {method: 'POST',
                    headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: ''});
                return r.status;
            }""",
            credential_path,
        )
        assert refused == 403, refused
        forged = page.evaluate(
            """async (path) => {
                const r = await fetch(path + '/revoke', {method: 'POST',
                    headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                    body: 'csrf_token=' + '0'.repeat(64)});
                return r.status;
            }""",
            credential_path,
        )
        assert forged == 403, forged
        assert authorize(api_key).status_code == 200, "the refused posts changed nothing"

        step("disable (confirmed first) and enable")
        page.click("#disable-button")
        page.click("#confirm-disable")
        expect(page.locator("#credential-status")).to_have_text("Disabled")
        assert authorize(api_key).status_code == 401
        page.click("button:has-text('Enable')")
        expect(page.locator("#credential-status")).to_have_text("Active")
        assert authorize(api_key).status_code == 200

        step("revoking asks first, says it cannot be undone, and refuses the key at once")
        page.click("#revoke-button")
        revoke = page.locator("#revoke-dialog")
        expect(revoke).to_be_visible()
        expect(revoke).to_contain_text("cannot be undone")
        assert page.evaluate(
            "document.querySelector('#revoke-dialog').contains(document.activeElement)"
        ), "focus is not inside the confirmation"
        shot(page, "revoke-confirmation")
        page.keyboard.press("Escape")
        expect(revoke).to_be_hidden()
        assert authorize(api_key).status_code == 200, "cancelling revoked nothing"
        page.click("#revoke-button")
        page.click("#confirm-revoke")
        expect(page.locator("#credential-status")).to_have_text("Revoked")
        assert authorize(api_key).status_code == 401
        token = requests.post(
            f"{BASE}/v1/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, client_secret),
            timeout=10,
        )
        assert token.status_code == 401, token.text

        step("API Security: add and remove a rule; a rule that shuts me out needs consent")
        page.click("nav >> text=API Security")
        expect(page).to_have_url(f"{BASE}/developer/api-security")
        expect(page.locator("#no-rules")).to_be_visible()
        page.check("input[name=type][value=deny]")
        page.fill("#ip_network", "198.51.100.0/25")
        page.fill("#rule-description", "A range we distrust")
        page.click("#add-rule")
        expect(page.locator("#rules-table")).to_contain_text("198.51.100.0/25")
        page.fill("#ip_network", "10.0.0.0/8")
        page.click("#add-rule")
        expect(page.locator("#network-error")).to_contain_text("/25")
        page.check("input[name=type][value=deny]")
        page.fill("#ip_network", "127.0.0.1")
        page.click("#add-rule")
        expect(page.locator("#lockout-warning")).to_be_visible()
        shot(page, "api-security")
        page.goto(f"{BASE}/developer/api-security")
        page.click("button:has-text('Remove')")
        page.locator("dialog[open] button[type=submit]").click()
        expect(page.locator("#no-rules")).to_be_visible()

        step("the audit log lists what was done")
        page.click("nav >> text=Audit Log")
        for action in ["key.created", "key.revoked", "ip_rule.added", "ip_rule.removed", "member.logged_in"]:
            expect(page.locator("table")).to_contain_text(action)
        shot(page, "audit-log")

        step("keyboard: the skip link is the first stop and leads to the content")
        page.goto(f"{BASE}/developer/api-credentials")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"

        step("a narrow phone width has no sideways scrolling")
        page.set_viewport_size({"width": 390, "height": 844})
        for url in ["/developer/api-credentials", "/developer/api-security", credential_path]:
            page.goto(f"{BASE}{url}")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{url} scrolls sideways by {overflow}px"
        page.goto(f"{BASE}/developer/api-credentials")
        shot(page, "api-credentials-phone")
        page.set_viewport_size({"width": 1280, "height": 800})

        step("logging out ends the session")
        page.click("button:has-text('Log out')")
        expect(page).to_have_url(re.compile(r"/login"))
        expect(page.locator("#login-notice")).to_have_text("You have logged out.")
        page.goto(f"{BASE}/developer/api-security")
        expect(page).to_have_url(re.compile(r"/login\?next="))

        step("the API reference at /docs works under its Content-Security-Policy")
        answer = page.goto(f"{BASE}/docs/")
        policy = answer.headers.get("content-security-policy", "")
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, policy
        page.wait_for_selector(".opblock-summary", timeout=15000)
        assert page.locator(".opblock").count() > 10
        shot(page, "docs")

        assert not csp_violations, csp_violations
        assert not alerts, alerts
        browser.close()
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback

        traceback.print_exc()
        sys.exit(1)
