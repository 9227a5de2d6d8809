"""The web page in a real browser: Debian's headless Chromium, driven
through chromedriver (WebDriver), against a running `make run`
(CHAT_API_URL). scripts/web-test.sh runs it; `make test` runs that.

Controls are found as a person (or a screen reader) finds them: by role
and accessible name, as the browser computes them. Every wait is for a
condition, with a timeout; none is a fixed sleep.
"""

import os
import re
import urllib.error
import urllib.request
import uuid

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

URL = os.environ.get("CHAT_API_URL", "http://127.0.0.1:3000").rstrip("/")
SCREENSHOT = os.environ.get("WEB_SCREENSHOT")
# Two slow cores may be building or serving something else at the same time.
WAIT = float(os.environ.get("WEB_WAIT_SECONDS", "60"))

# Where each role's elements can be: a short list keeps each search to a
# few WebDriver calls.
SELECTORS = {
    "textbox": "input, textarea",
    "spinbutton": "input",
    "button": "button",
    "status": "output",
    "combobox": "select",
}


@pytest.fixture(scope="module")
def browser():
    options = Options()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    options.add_argument("--headless=new")
    options.add_argument("--window-size=1280,1000")
    options.add_argument("--disable-dev-shm-usage")
    # Chromium's sandbox cannot start as root (a CI container): there
    # the page is our own, served from 127.0.0.1.
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")
    # The console, to catch a Content-Security-Policy violation.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    yield driver
    driver.quit()


def wait_for(driver, condition, what):
    def check(d):
        try:
            return condition(d)
        except StaleElementReferenceException:
            return False

    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(check, f"waiting for {what}")


def visible(driver, role, name):
    """The displayed elements of this role whose accessible name is `name`."""
    found = []
    for element in driver.find_elements(By.CSS_SELECTOR, SELECTORS[role]):
        if element.is_displayed() and element.accessible_name == name and element.aria_role == role:
            found.append(element)
    return found


def one(driver, role, name):
    """The one displayed control of this role and name, once there is one."""

    def exactly_one(d):
        found = visible(d, role, name)
        assert len(found) <= 1, f"{len(found)} visible {role}s named {name!r}"
        return found[0] if found else False

    return wait_for(driver, exactly_one, f"the {role} {name!r}")


def type_into(driver, name, text, role="textbox"):
    box = one(driver, role, name)
    box.clear()
    box.send_keys(text)


def text_of(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def balance(driver):
    """The balance shown, once it is a number."""

    def number(d):
        text = one(d, "status", "Balance").text.strip()
        return int(text) if text.isdigit() else False

    return wait_for(driver, number, "the balance")


def tab_order(driver, presses=40):
    """The ids of the controls Tab reaches from the top of the page, in order."""
    driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    reached = []
    for _ in range(presses):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        reached.append(driver.execute_script("return document.activeElement && document.activeElement.id"))
    return reached


def row_text(driver, selector, holding):
    """The text of the first element at `selector` whose text holds `holding`,
    read at once (a list the page redraws leaves no stale handle behind)."""
    for element in driver.find_elements(By.CSS_SELECTOR, selector):
        text = element.text
        if holding in text:
            return text
    return False


def api(path, token, method="GET"):
    request = urllib.request.Request(
        URL + path, method=method, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_page_is_served_with_hashed_files_and_a_strict_policy():
    with urllib.request.urlopen(URL + "/", timeout=WAIT) as response:
        page = response.read().decode()
        csp = response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-cache"
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe" not in csp
    start = page.index('src="/assets/app.') + len('src="')
    script = page[start : page.index('"', start)]
    with urllib.request.urlopen(URL + script, timeout=WAIT) as response:
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert response.headers["Content-Type"].startswith("text/javascript")


def test_a_person_registers_chats_makes_a_key_and_logs_out(browser):
    d = browser
    d.get(URL + "/")
    one(d, "button", "Log in")
    # Every control of the form is reached with the keyboard, in reading order.
    reached = tab_order(d, 4)
    assert reached == ["username", "password", "login", "register"], reached
    name = "web-" + uuid.uuid4().hex[:12]
    password = "correct-horse-" + uuid.uuid4().hex[:8]

    # A refusal is a sentence, not the API's JSON.
    type_into(d, "Username", name)
    type_into(d, "Password", password)
    one(d, "button", "Log in").click()
    alert = wait_for(d, lambda d: text_of(d, "alert"), "the refusal")
    assert "do not match" in alert and "{" not in alert

    one(d, "button", "Register").click()
    wait_for(d, lambda d: "Registered" in text_of(d, "notice"), "the registration")
    one(d, "button", "Log in").click()
    before = balance(d)
    assert not visible(d, "button", "Log in"), "the login form is hidden once logged in"

    # The model comes from /v1/models, with its price.
    model = one(d, "combobox", "Model")
    priced = wait_for(d, lambda d: re.search(r"\((\d+) tokens a chat\)", model.text), "the model's price")
    price = int(priced.group(1))

    # Focus is in the message box (where logging in puts it), so Tab goes
    # round from there: read the round from the first control of the page.
    wait_for(d, lambda d: d.execute_script("return document.activeElement.id") == "message", "focus in Message")
    reached = tab_order(d)
    assert "logout" in reached, reached
    start = reached.index("logout")
    reached = reached[start:] + reached[:start]
    for control in ["logout", "model", "message", "send", "key-name", "key-create"]:
        assert control in reached, f"{control} is not reached with Tab: {reached}"
    assert reached.index("model") < reached.index("message") < reached.index("send")

    # A chat, streamed through /v1/chat/completions.
    type_into(d, "Message", "Hello from the browser")
    one(d, "button", "Send").click()
    wait_for(
        d,
        lambda d: d.find_element(By.CSS_SELECTOR, "#transcript li.assistant:last-child").text.endswith("AI response"),
        "the streamed reply",
    )
    # The browser files a fetch's timing entry only once its body has
    # ended, which may be a moment after the last piece is shown: wait for
    # it, then hold it to exactly one request.
    completions = (
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.name.endsWith('/v1/chat/completions')).length"
    )
    wait_for(d, lambda d: d.execute_script(completions) >= 1, "the completion's timing entry")
    assert d.execute_script(completions) == 1

    # The balance goes down by the chat's price, which history shows too.
    wait_for(d, lambda d: balance(d) == before - price, "the balance after the chat")
    newest = wait_for(
        d,
        lambda d: (items := d.find_elements(By.CSS_SELECTOR, "#history li"))
        and "Hello from the browser" in (text := items[0].text)
        and text,
        "the chat in history",
    )
    assert f"{price} tokens" in newest and "AI response" in newest

    # Usage: a chart, or a plain sentence where the deployment has none.
    wait_for(
        d,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#usage svg")
        or "Usage is not available on this deployment" in text_of(d, "usage"),
        "the usage panel",
    )

    # A key, shown once, that works, then revoked.
    type_into(d, "Key name", "browser")
    type_into(d, "Budget in tokens (empty: none)", "500", role="spinbutton")
    one(d, "button", "Create key").click()
    secret_box = one(d, "status", "New API key")
    secret = wait_for(d, lambda d: secret_box.text.startswith("sk-") and secret_box.text, "the new key")
    listed = wait_for(d, lambda d: row_text(d, "#keys tr", "browser"), "the key in the list")
    assert secret not in listed, "the list never shows the secret"
    # The budget is listed where the deployment has key budgets; where it
    # has none, the page says the key has no limit.
    wait_for(
        d,
        lambda d: "500 tokens" in (row_text(d, "#keys tr", "browser") or "")
        or "no key budgets" in text_of(d, "notice"),
        "the key's budget, or word that there are none",
    )
    # Nothing runs off the side, at phone width or wide, with the key listed
    # (the widest thing on the page).
    d.set_window_size(390, 844)
    wait_for(
        d,
        lambda d: d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"),
        "the page to fit a phone's width",
    )
    d.set_window_size(1280, 1000)
    wait_for(
        d,
        lambda d: d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"),
        "the page to fit a wide window",
    )

    assert api("/balance/", secret) == 200
    if SCREENSHOT:
        d.execute_script("window.scrollTo(0, 0)")
        d.save_screenshot(SCREENSHOT)
    one(d, "button", "I have copied it").click()
    assert secret not in d.page_source, "the secret is shown once"
    one(d, "button", "Revoke browser").click()
    wait_for(d, lambda d: "revoked" in text_of(d, "notice"), "the revocation")
    wait_for(d, lambda d: not d.find_elements(By.CSS_SELECTOR, "#keys tr"), "the key gone from the list")
    assert api("/balance/", secret) == 401

    # Log out: the token stops working and the page is back to log in.
    token = d.execute_script("return sessionStorage.getItem('chat-token')")
    one(d, "button", "Log out").click()
    one(d, "button", "Log in")
    assert not visible(d, "status", "Balance")
    assert d.execute_script("return sessionStorage.getItem('chat-token')") is None
    assert api("/balance/", token) == 401

    # An ended session (here, the one just logged out) sends the page back
    # to log in with a sentence.
    d.execute_script(
        "sessionStorage.setItem('chat-token', arguments[0]); sessionStorage.setItem('chat-user', arguments[1])",
        token,
        name,
    )
    d.refresh()
    wait_for(d, lambda d: "log in again" in text_of(d, "alert"), "the expired session's message")
    one(d, "button", "Log in")

    # The strict policy blocked nothing the page needs.
    violations = [
        entry["message"]
        for entry in d.get_log("browser")
        if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]
    ]
    assert violations == []
