"""The alerts TOML: what it yields, and errors that name file, entry and key, never a secret."""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from pathlib import Path

import pytest

from tokenplan.errors import ConfigError
from tokenplan.service.alerts_config import load_alerts
from tokenplan.service.webhooks import Kind

SECRET = "SECdo-not-print-me"
URL = "https://oapi.dingtalk.com/robot/send?access_token=hidden-token-0123"

GOOD = """
[alerts]
repeat_after = "30min"
headroom_below = 0.1
thresholds = [1.0, 0.5, 0.8]
state = "st/alerts.json"

[[webhook]]
name = "ding"
kind = "dingtalk"
url_env = "DING_URL"
secret_env = "DING_SECRET"
min_severity = "critical"

[[webhook]]
name = "lark"
kind = "feishu"
url = "https://open.larksuite.com/open-apis/bot/v2/hook/abc"
msg_type = "text"
"""


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(body)
    return path


def test_a_good_file_loads_with_secrets_from_the_environment(tmp_path: Path) -> None:
    config = load_alerts(_write(tmp_path, GOOD), env={"DING_URL": URL, "DING_SECRET": SECRET})
    ding, lark = config.webhooks
    assert ding.kind is Kind.dingtalk
    assert ding.url == URL
    assert ding.secret == SECRET
    assert ding.min_severity == "critical"
    assert lark.kind is Kind.feishu
    assert lark.msg_type == "text"
    assert lark.secret is None
    assert config.rules.thresholds == (0.5, 0.8, 1.0)
    assert config.rules.headroom_below == 0.1
    assert config.dedupe.repeat_after == timedelta(minutes=30)
    assert config.state_path == tmp_path / "st" / "alerts.json"
    # Secrets stay out of reprs (a config printed in a debug line shows neither).
    assert SECRET not in repr(config)
    assert "hidden-token" not in repr(config)


def test_the_shipped_example_loads(tmp_path: Path) -> None:
    example = resources.files("tokenplan.service").joinpath("alerts.example.toml")
    path = tmp_path / "alerts.toml"
    path.write_text(example.read_text("utf-8"))
    env = {
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
        "FEISHU_WEBHOOK_URL": "https://open.feishu.cn/open-apis/bot/v2/hook/x",
        "FEISHU_SECRET": "s1",
        "DINGTALK_WEBHOOK_URL": URL,
        "DINGTALK_SECRET": "s2",
        "WECOM_WEBHOOK_URL": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
    }
    config = load_alerts(path, env=env)
    assert [w.kind.value for w in config.webhooks] == [
        "slack",
        "feishu",
        "dingtalk",
        "wecom",
        "json",
    ]
    assert config.dedupe.repeat_after == timedelta(hours=4)
    assert config.retry.max_wait == 120.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GOOD.replace("repeat_after", "repeat_afer"), r"\[alerts\]: unknown key 'repeat_afer'"),
        (GOOD.replace('"30min"', '"soon"'), r"field 'repeat_after' is 'soon'; use a duration"),
        (GOOD.replace("0.1", "1.5"), r"field 'headroom_below' must be a share between 0 and 1"),
        (GOOD.replace("[1.0, 0.5, 0.8]", "[0.5, -1]"), r"field 'thresholds' must be a list"),
        (GOOD.replace('"dingtalk"', '"teams"'), r"#1 \('ding'\): field 'kind' is 'teams'; use"),
        (
            GOOD.replace('min_severity = "critical"', 'min_severity = "loud"'),
            r"#1 \('ding'\): field 'min_severity' is 'loud'",
        ),
        (
            GOOD.replace('msg_type = "text"', 'msg_type = "card"'),
            r"#2 \('lark'\): field 'msg_type' is 'card'",
        ),
        (GOOD.replace('name = "lark"', 'name = "ding"'), r"#2: name 'ding' is used twice"),
        (
            GOOD.replace('url = "https://open', 'url = "ftp://open'),
            r"#2 \('lark'\): field 'url' is not an http\(s\) URL with a host\.$",
        ),
        ("[alerts]\n", r"no \[\[webhook\]\] entries"),
        (
            GOOD.replace("open.larksuite.com/", "open.larksuite.com:99999/"),
            r"#2 \('lark'\): field 'url' has a port outside 0-65535",
        ),
        (
            GOOD.replace('msg_type = "text"', 'secret = "x"\nurl_env = "X"'),
            r"#2 \('lark'\): give url or url_env, not both",
        ),
    ],
)
def test_errors_name_file_entry_and_key(tmp_path: Path, body: str, expected: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_alerts(path, env={"DING_URL": URL, "DING_SECRET": SECRET})
    message = str(caught.value)
    assert str(path) in message
    assert SECRET not in message
    assert "hidden-token" not in message


def test_a_missing_environment_variable_is_named_not_shown(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match=r"the environment variable DING_SECRET is not set"):
        load_alerts(path, env={"DING_URL": URL})


def test_a_secret_on_an_unsigned_kind_is_refused(tmp_path: Path) -> None:
    body = '[[webhook]]\nname = "w"\nkind = "wecom"\nurl = "https://q.test/s?key=k"\nsecret = "x"\n'
    with pytest.raises(ConfigError, match=r"kind 'wecom' is not signed"):
        load_alerts(_write(tmp_path, body), env={})


def test_a_bad_url_is_not_echoed(tmp_path: Path) -> None:
    body = '[[webhook]]\nname = "w"\nkind = "json"\nurl = "not a url hidden-token-0123"\n'
    with pytest.raises(ConfigError) as caught:
        load_alerts(_write(tmp_path, body), env={})
    assert "hidden-token" not in str(caught.value)


def test_not_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[[webhook]\n")
    with pytest.raises(ConfigError, match=r"the alerts file .*alerts\.toml is not valid TOML"):
        load_alerts(path, env={})
