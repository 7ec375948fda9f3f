"""The dashboard's flows in a real browser, and every page checked by axe-core.

Run by `dashboard.rs` against the binary started with its own scope catalogue (`orders`,
`customers`). Environment: KEYWARD_URL, KEYWARD_EMAIL and KEYWARD_PASSWORD (an owner),
KEYWARD_ADMIN_KEY (the bootstrap key, for the API side of the checks), KEYWARD_AXE (the path
of axe.min.js from npm's axe-core), KEYWARD_SCREENSHOTS (a directory) and KEYWARD_CHROMIUM.
Prints OK last when every check passed; any failed check raises.

axe runs in a browser context that bypasses the Content-Security-Policy (it is injected as
a script); `dashboard_browser.py` checks the pages under the policy.
"""

import os
import re
import sys

import pyotp
import requests
from playwright.sync_api import expect, sync_playwright

BASE = os.environ["KEYWARD_URL"]
EMAIL = os.environ["KEYWARD_EMAIL"]
PASSWORD = os.environ["KEYWARD_PASSWORD"]
ADMIN_KEY = os.environ["KEYWARD_ADMIN_KEY"]
AXE = open(os.environ["KEYWARD_AXE"], encoding="utf-8").read()
SHOTS = os.environ["KEYWARD_SCREENSHOTS"]
CHROMIUM = os.environ.get("KEYWARD_CHROMIUM", "/usr/bin/chromium")
WIDTHS = [(1280, 800), (390, 844)]

expect.set_options(timeout=10_000)
checked_pages = []


def step(text):
    print(f"- {text}", flush=True)


def api(method, path, **kwargs):
    headers = kwargs.pop("headers", {})
    headers["X-Api-Key"] = ADMIN_KEY
    return requests.request(method, f"{BASE}{path}", headers=headers, timeout=10, **kwargs)


def audit(page, name):
    """axe-core on the page as it is: no serious or critical violation; then screenshots of
    it at each width, without sideways scrolling."""
    page.evaluate(AXE)
    violations = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '
                    + v.nodes.map(n => n.target.join(' ')).join(', '));
        }"""
    )
    assert not violations, f"{name}: {violations}"
    for width, height in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width}px"
        page.screenshot(path=os.path.join(SHOTS, f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0][0], "height": WIDTHS[0][1]})
    checked_pages.append(name)


def log_in(page, email, password):
    page.goto(f"{BASE}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{BASE}/developer/api-credentials")


def csrf(page):
    return page.get_attribute("meta[name=keyward-csrf-token]", "content")


def session_api(page, method, path, body=None):
    """A management API call made with the page's session and CSRF token."""
    return page.evaluate(
        """async ([method, path, body, token]) => {
            const r = await fetch(path, {method, headers: {'Content-Type': 'application/json',
                'X-CSRF-Token': token}, body: body ? JSON.stringify(body) : undefined});
            return {status: r.status, body: await r.json()};
        }""",
        [method, path, body, csrf(page)],
    )


def effective(page):
    return page.locator("#effective-scopes code").all_inner_texts()


def main():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        owner_context = browser.new_context(
            viewport={"width": 1280, "height": 800}, bypass_csp=True, accept_downloads=True
        )
        page = owner_context.new_page()

        step("login page")
        page.goto(f"{BASE}/login")
        audit(page, "login")
        log_in(page, EMAIL, PASSWORD)
        audit(page, "api-credentials-empty")

        step("every form error at once, the summary focused and linked to each field")
        page.goto(f"{BASE}/developer/api-credentials/new")
        audit(page, "create-form")
        page.fill("#scopes", "nope:read")
        page.fill("#ip_allowlist", "10.0.0.0/33")
        page.fill("#metadata", "[1, 2]")
        page.click("#submit-credential")
        summary = page.locator("#error-summary")
        expect(summary).to_be_visible()
        expect(summary).to_contain_text("There are 4 problems")
        assert page.evaluate("document.activeElement.id") == "error-summary"
        assert "`" not in summary.inner_text(), summary.inner_text()
        summary.locator("a[href='#ip_allowlist']").click()
        assert page.evaluate("location.hash") == "#ip_allowlist"
        expect(page.locator("#ip_allowlist")).to_have_attribute("aria-invalid", "true")
        audit(page, "create-form-errors")

        step("the scope picker shows the deployment's own resources and the effective scopes")
        page.goto(f"{BASE}/developer/api-credentials/new")
        expect(page.locator("#scope-orders-read")).to_be_visible()
        assert page.locator("#scope-dns-read").count() == 0, "the example resources are gone"
        page.check("#scope-orders-read")
        page.check("#scope-customers-all")
        assert effective(page) == ["customers:*", "orders:read"], effective(page)
        page.select_option("#role", "viewer")
        assert effective(page) == ["customers:*", "orders:read", "read"], effective(page)
        page.select_option("#role", "")
        page.fill("#scopes", "orders:refund")
        assert "orders:refund" in effective(page), effective(page)
        page.fill("#scopes", "")
        page.fill("#name", "Order sync")
        page.fill("#owner_id", "acct-7")
        page.click("#submit-credential")
        expect(page.locator("#issued-dialog")).to_be_visible()
        audit(page, "credential-created")
        api_key = page.input_value("#api-key")
        print(f"SECRET_SHOWN {api_key} {page.input_value('#client-secret')}", flush=True)
        page.click("#close-issued")
        expect(page).to_have_url(re.compile(r"/developer/api-credentials/api_key_"))
        detail_url = page.url
        key_id = detail_url.rsplit("/", 1)[1]

        step("config → create → verify: the key holds exactly the picked scopes")
        for scopes, status in [("orders:read", 200), ("customers:write", 200), ("orders:write", 403)]:
            answer = requests.get(
                f"{BASE}/v1/authorize",
                headers={"X-Api-Key": api_key, "X-Keyward-Required-Scopes": scopes},
                timeout=10,
            )
            assert answer.status_code == status, (scopes, answer.status_code, answer.text)
        verified = api("POST", "/v1/keys/verify", json={"key": api_key, "required_scopes": ["orders:read"]})
        assert verified.status_code == 200 and verified.json()["valid"] is True, verified.text

        step("usage: the chart switches between 24 hours, 7 days and 30 days")
        page.wait_for_timeout(1500)  # usage counts are written every second
        page.reload()
        chart = page.locator("#usage-chart")
        expect(chart.locator("svg")).to_be_visible()
        expect(chart.locator(".legend")).to_contain_text("Accepted")
        expect(chart.locator(".legend")).to_contain_text("Missing scope")
        assert chart.locator("rect.hit").count() == 24
        audit(page, "credential-detail")
        chart.get_by_role("link", name="last 7 days").click()
        expect(chart.locator("a[aria-current=true]")).to_have_text("last 7 days")
        assert chart.locator("rect.hit").count() == 28
        chart.get_by_role("link", name="last 30 days").click()
        expect(chart.locator("a[aria-current=true]")).to_have_text("last 30 days")
        assert chart.locator("rect.hit").count() == 30
        expect(chart.locator(".chart-caption")).to_contain_text("Requests per day")

        step("the overview: requests, busiest, never used, expiring")
        page.goto(f"{BASE}/developer/overview")
        expect(page.locator("#busiest")).to_contain_text("Order sync")
        audit(page, "overview")
        page.goto(detail_url)

        step("editing with a stale form is refused, and shows the credential as it is")
        page.click("#edit-credential")
        expect(page).to_have_url(f"{detail_url}/edit")
        audit(page, "edit-form")
        changed = api("PATCH", f"/v1/keys/{key_id}", json={"name": "Order sync (renamed elsewhere)"})
        assert changed.status_code == 200, changed.text
        page.fill("#name", "My rename")
        page.click("#submit-credential")
        expect(page.locator("#conflict")).to_be_visible()
        assert page.evaluate("document.activeElement.id") == "conflict"
        expect(page.locator("#name")).to_have_value("Order sync (renamed elsewhere)")
        audit(page, "edit-conflict")
        page.fill("#name", "Order sync v2")
        page.click("#submit-credential")
        expect(page).to_have_url(f"{detail_url}?done=updated")
        expect(page.locator("h1")).to_have_text("Order sync v2")

        step("a pasted key finds its credential; the table shows it masked")
        page.goto(f"{BASE}/developer/api-credentials")
        expect(page.locator("code.key-hint").first).to_have_text(
            re.compile(r"^kw_live_…[A-Za-z0-9]{4}$")
        )
        page.click("summary:has-text('Find a pasted key')")
        page.fill("#secret", api_key)
        page.click("#find-key")
        expect(page.locator("#lookup-result")).to_contain_text("Order sync v2")
        assert api_key not in page.content(), "the pasted key is shown back"
        page.fill("#filter-q", "ORDER")
        page.press("#filter-q", "Enter")
        expect(page.locator("#credential-table")).to_contain_text("Order sync v2")
        audit(page, "api-credentials")

        step("disable asks first")
        page.goto(detail_url)
        page.click("#disable-button")
        expect(page.locator("#disable-dialog")).to_be_visible()
        page.click("#confirm-disable")
        expect(page.locator("#credential-status")).to_have_text("Disabled")

        step("invite a viewer: the link works once, and the role bounds the dashboard and API")
        page.goto(f"{BASE}/settings/members")
        audit(page, "members")
        page.check("input[name=role][value=viewer]")
        page.click("#invite")
        link = page.input_value("#invite-link")
        assert link.startswith(BASE + "/invite?token="), link
        audit(page, "members-invited")
        invitee_context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
        invitee = invitee_context.new_page()
        invitee.goto(link)
        expect(invitee.locator("#invite-role")).to_have_text("viewer")
        audit(invitee, "invite")
        invitee.fill("#email", "vera@example.com")
        invitee.fill("#password", "a viewer's password")
        invitee.fill("#confirm_password", "a viewer's password")
        invitee.click("#join")
        expect(invitee).to_have_url(f"{BASE}/developer/api-credentials")
        expect(invitee.locator("#nav-role")).to_have_text("viewer")
        assert invitee.locator("#create-credential").count() == 0
        refused = session_api(invitee, "POST", "/v1/keys", {"name": "sneaky"})
        assert refused["status"] == 403 and refused["body"]["code"] == "insufficient_role", refused
        listed = session_api(invitee, "GET", "/v1/keys")
        assert listed["status"] == 200, listed
        invitee.goto(link)
        expect(invitee.locator("#invite-gone")).to_be_visible()

        step("the owner makes the viewer a developer; the same session may now create")
        page.goto(f"{BASE}/settings/members")
        row = page.locator("tr[data-email='vera@example.com']")
        row.locator("select").select_option("developer")
        row.locator("form.inline button[type=submit]").click()
        expect(page.locator("#notice")).to_contain_text("role was changed")
        invitee.goto(f"{BASE}/developer/api-credentials")
        expect(invitee.locator("#create-credential")).to_be_visible()
        made = session_api(invitee, "POST", "/v1/keys", {"name": "by vera", "permissions": ["orders:read"]})
        assert made["status"] == 201, made
        print(f"SECRET_SHOWN {made['body']['key']}", flush=True)

        step("the audit log names actors, filters by them and exports what it shows")
        page.goto(f"{BASE}/developer/audit-log")
        audit(page, "audit-log")
        page.select_option("#actor", label="vera@example.com")
        page.click("#apply-filters")
        expect(page.locator("#audit-table")).to_contain_text("vera@example.com")
        actions = page.locator("#audit-table tbody td:nth-child(2)").all_inner_texts()
        assert actions and all(a in ("member.joined", "member.logged_in", "key.created") for a in actions), actions
        with page.expect_download() as download:
            page.click("#export-csv")
        path = download.value.path()
        text = open(path, encoding="utf-8").read()
        assert text.startswith("id,occurred_at,action,actor,actor_name"), text[:200]
        assert "vera@example.com" in text and ADMIN_KEY not in text
        assert EMAIL not in text, "the export holds only the filtered actor's events"
        audit(page, "audit-log-filtered")

        step("your account: change your own password")
        page.goto(f"{BASE}/settings/account")
        audit(page, "account")
        page.fill("#current_password", "not it at all")
        page.fill("#new_password", "short")
        page.fill("#confirm_password", "other")
        page.click("#change-password")
        expect(page.locator("#error-summary")).to_contain_text("There are 2 problems")
        audit(page, "account-errors")

        step("two-step verification: turned on with an authenticator code, then asked at login")
        page.goto(f"{BASE}/settings/account")
        page.click("#turn-on-two-step")
        audit(page, "two-step")
        secret = page.input_value("#totp-secret")
        assert page.get_attribute("#otpauth-link", "href").startswith("otpauth://totp/Keyward:")
        totp = pyotp.TOTP(secret)
        page.fill("#code", totp.now())
        page.click("#turn-on")
        codes = page.locator("#recovery-codes code").all_inner_texts()
        assert len(codes) == 10, codes
        print("SECRET_SHOWN " + " ".join([secret] + codes), flush=True)
        audit(page, "recovery-codes")
        page.click("#codes-saved")
        expect(page.locator("#two-step-status")).to_contain_text("10 recovery codes left")
        page.click("button:has-text('Log out')")
        page.fill("#email", EMAIL)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/login/code"))
        audit(page, "login-code")
        page.fill("#code", "000000")
        page.click("#verify-code")
        expect(page.locator("#code-error")).to_be_visible()
        # A fresh step's code (the one used to turn it on is spent).
        page.wait_for_timeout(max(0, (30 - int(__import__("time").time()) % 30) * 1000 + 500))
        page.fill("#code", totp.now())
        page.click("#verify-code")
        expect(page).to_have_url(f"{BASE}/developer/api-credentials")

        step("the remaining pages pass axe too")
        for path, name in [
            ("/developer/api-security", "api-security"),
            ("/developer/webhooks", "webhooks"),
            ("/developer/nothing-here", "not-found"),
        ]:
            page.goto(f"{BASE}{path}")
            audit(page, name)
        page.goto(f"{BASE}/developer/webhooks")
        page.fill("#webhook-url", "http://127.0.0.1:9/hooks")
        page.click("#add-webhook")
        audit(page, "webhook-secret")
        page.goto(f"{BASE}/developer/webhooks")
        page.locator("#webhooks-table a, table a").first.click()
        expect(page).to_have_url(re.compile(r"/developer/webhooks/webhook_"))
        audit(page, "webhook-detail")
        page.goto(detail_url)
        page.click("button:has-text('Rotate')")
        page.click("#confirm-rotate")
        expect(page.locator("#issued-dialog")).to_be_visible()
        print(f"SECRET_SHOWN {page.input_value('#api-key')} {page.input_value('#client-secret')}", flush=True)
        audit(page, "credential-rotated")
        page.click("#close-issued")
        expect(page.locator("#grace-notice, #notice").first).to_be_visible()

        print(f"checked {len(checked_pages)} pages: {', '.join(checked_pages)}")
        browser.close()
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback

        traceback.print_exc()
        sys.exit(1)
