#!/usr/bin/env python3
"""End-to-end test of yadtq-web in a real headless browser (Debian's chromium + chromedriver).

Run by Tests/YADTQIntegrationTests/WebBrowserTests.swift, which starts yadtq-web (with a token)
and, when this script prints QUEUED-SEEN, a worker. The script:

  1. signs in through the login form;
  2. submits an `echo` task whose args hold an XSS payload through the submit form;
  3. sees the task QUEUED on the tasks page, prints QUEUED-SEEN, and sees the same page
     (never reloaded) turn it SUCCESS;
  4. opens the task's page and checks that the payload shows as text and never ran;
  5. checks that a bad paste is refused with a message, and visits workers and dashboard.

Every page is saved as a PNG in --shots. Exit status 0 means every check passed.
"""
import argparse
import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException, NoSuchElementException, StaleElementReferenceException, TimeoutException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

PAYLOAD = "<script>alert(1)</script>"


class Check(Exception):
    """A check that failed, with what was expected."""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", required=True, help="the server's YADTQ_WEB_TOKEN")
    parser.add_argument("--shots", required=True, help="folder for the screenshots")
    parser.add_argument("--success-timeout", type=float, default=120)
    args = parser.parse_args()
    os.makedirs(args.shots, exist_ok=True)

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1366,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        run(driver, args)
    except (Check, TimeoutException) as failure:
        shot(driver, args.shots, "failure")
        print(f"FAILED: {failure or 'timed out'}", file=sys.stderr)
        print(f"page was {driver.current_url}:\n{driver.find_element(By.TAG_NAME, 'body').text[:2000]}",
              file=sys.stderr)
        return 1
    finally:
        driver.quit()
    print("browser test passed")
    return 0


def shot(driver, folder, name):
    driver.save_screenshot(os.path.join(folder, name + ".png"))


def wait(driver, seconds=15):
    # A page that is being replaced can hand back an element that is gone a moment later:
    # that only means "not yet", like an element not found.
    return WebDriverWait(driver, seconds, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))


def click(driver, css):
    """Clicks an element of a page that updates itself, finding it again if it was replaced."""
    def attempt(d):
        d.find_element(By.CSS_SELECTOR, css).click()
        return True
    wait(driver).until(attempt)


def heading(driver):
    return driver.find_element(By.TAG_NAME, "h1").text


def expect(condition, message):
    if not condition:
        raise Check(message)


def run(driver, args):
    base = args.base.rstrip("/")

    # 1. Every page needs the token: the tasks page sends us to the login form.
    driver.get(base + "/tasks")
    wait(driver).until(EC.presence_of_element_located((By.ID, "token")))
    expect("/login" in driver.current_url, f"expected the login form, got {driver.current_url}")
    shot(driver, args.shots, "login")
    driver.find_element(By.ID, "token").send_keys("not-the-token")
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(driver).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice.error"), "not the token"))
    driver.find_element(By.ID, "token").send_keys(args.token)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(driver).until(lambda d: heading(d) == "Tasks")
    expect(driver.current_url.endswith("/tasks"), f"login should return to /tasks, got {driver.current_url}")

    # 2. Submit one task through the form, with an XSS payload in its args.
    driver.get(base + "/submit")
    Select(driver.find_element(By.ID, "task-type")).select_by_value("echo")
    help_text = driver.find_element(By.ID, "type-help").text
    expect("unchanged" in help_text, f"the chosen type's description should show, got {help_text!r}")
    driver.find_element(By.ID, "task-args").send_keys(f'"{PAYLOAD}" 42')
    shot(driver, args.shots, "submit")
    driver.find_element(By.CSS_SELECTOR, "#one-task button[type=submit]").click()
    wait(driver).until(lambda d: heading(d) == "Submitted")
    rows = driver.find_elements(By.CSS_SELECTOR, "tr[data-task-id]")
    expect(len(rows) == 1, f"expected one submitted task, got {len(rows)}")
    task_id = rows[0].get_attribute("data-task-id")
    # The page updates the row in place, so it is read through a wait (no worker runs yet).
    wait(driver).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "tr[data-task-id] .badge"), "QUEUED"))
    shot(driver, args.shots, "submitted")

    # 3. The tasks page shows it QUEUED, then SUCCESS once the worker runs it, without a reload.
    driver.get(base + "/tasks")
    driver.execute_script("window.yadtqNotReloaded = true;")
    badge = f'tr[data-task-id="{task_id}"] .badge'
    wait(driver).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, badge), "QUEUED"))
    shot(driver, args.shots, "tasks-queued")
    print("QUEUED-SEEN", flush=True)  # the Swift test starts the worker now
    wait(driver, args.success_timeout).until(
        EC.text_to_be_present_in_element((By.CSS_SELECTOR, badge), "SUCCESS"))
    expect(driver.execute_script("return window.yadtqNotReloaded === true;"),
           "the tasks page reloaded; it must update in place")
    shot(driver, args.shots, "tasks")

    # 4. The task's page: the payload is text, and it never ran.
    click(driver, f'tr[data-task-id="{task_id}"] a')
    wait(driver).until(EC.presence_of_element_located((By.ID, "task-args-json")))
    expect(task_id in heading(driver), f"expected the page of {task_id}, got {heading(driver)!r}")
    args_text = driver.find_element(By.ID, "task-args-json").text
    expect(PAYLOAD in args_text, f"the args should show {PAYLOAD} as text, got {args_text!r}")
    expect(PAYLOAD in driver.find_element(By.TAG_NAME, "main").text, "the result should show the payload as text")
    expect(driver.execute_script("return document.querySelectorAll('main script').length;") == 0,
           "the payload became a script element")
    try:
        alert = driver.switch_to.alert
        raise Check(f"the payload ran: an alert says {alert.text!r}")
    except NoAlertPresentException:
        pass
    body = driver.find_element(By.TAG_NAME, "main").text
    for field in ("SUCCESS", "1 of 3", "w-browser", "Durations"):
        expect(field in body, f"the task page should show {field!r}")
    shot(driver, args.shots, "task")

    # 5. A bad paste is refused with a message naming the line; nothing is queued.
    driver.get(base + "/submit")
    driver.find_element(By.ID, "task-lines").send_keys("add 1 2\nno_such_type 1\nadd [1, 2")
    driver.find_element(By.CSS_SELECTOR, "#many-tasks button[type=submit]").click()
    error = wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".notice.error"))).text
    expect("line 3" in error and "unclosed bracket" in error, f"expected a message about line 3, got {error!r}")
    expect("add 1 2" in driver.find_element(By.ID, "task-lines").get_attribute("value"),
           "the paste should be kept so it can be fixed")
    shot(driver, args.shots, "submit-error")

    # The workers page and the dashboard.
    driver.get(base + "/workers")
    wait(driver).until(EC.text_to_be_present_in_element((By.ID, "live"), "w-browser"))
    shot(driver, args.shots, "workers")
    driver.get(base + "/")
    wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, "svg.chart rect.ok")))
    time.sleep(1.5)  # one live refresh, so the screenshot shows the page as it updates
    expect(driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.ok"), "the dashboard should draw its chart")
    shot(driver, args.shots, "dashboard")


if __name__ == "__main__":
    sys.exit(main())
