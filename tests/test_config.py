"""Loading and validating digest.toml and subscriber files: real files in tmp_path."""

from __future__ import annotations

import random
import textwrap
from email.headerregistry import Address
from pathlib import Path

import pytest

from digest.config import address_problem, load_config, load_subscriber, load_subscribers
from digest.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

ADA = """\
name = "Ada"
email = "ada@example.org"

[interests]
keywords = ["state space model"]
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def setup(tmp_path: Path, config: str = "", **subscribers: str) -> Path:
    """A digest.toml plus a subscribers folder (Ada unless others are given)."""
    for slug, text in (subscribers or {"ada": ADA}).items():
        write(tmp_path / "subscribers", f"{slug}.toml", text)
    return write(tmp_path, "digest.toml", config)


def config_error(tmp_path: Path, config: str, **subscribers: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(setup(tmp_path, config, **subscribers))
    return caught.value


def subscriber_error(tmp_path: Path, text: str, name: str = "ada.toml") -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_subscriber(write(tmp_path, name, text))
    return caught.value


# ------------------------------------------------------------------ the shipped examples


def test_the_example_digest_toml_and_its_subscribers_load() -> None:
    config = load_config(REPO / "digest.toml")

    slugs = [s.slug for s in config.subscribers]
    assert slugs == sorted(slugs) and len(slugs) >= 3
    assert {"ada", "alan", "grace"} <= set(slugs)
    assert len({s.email for s in config.subscribers}) == len(slugs)
    assert any(not s.name.isascii() for s in config.subscribers)
    assert any(s.frequency == "weekly" for s in config.subscribers)
    assert all(s.interests.keywords and s.interests.description for s in config.subscribers)
    assert config.delivery.transport == "maildir"
    assert config.delivery.maildir == REPO / "maildir"
    assert config.database == f"sqlite:///{REPO / 'digest.db'}"
    assert [s.kind for s in config.sources] == ["huggingface"]
    assert config.schedule is not None


def test_the_example_subscribers_follow_different_topics() -> None:
    subscribers = load_subscribers(REPO / "subscribers")
    keyword_sets = [set(s.interests.keywords) for s in subscribers]
    for i, first in enumerate(keyword_sets):
        for second in keyword_sets[i + 1 :]:
            assert len(first & second) <= 1


# ------------------------------------------------------------------ defaults and paths


def test_an_empty_digest_toml_gets_the_documented_defaults(tmp_path: Path) -> None:
    config = load_config(setup(tmp_path, ""))

    assert config.title == "Trending papers"
    assert config.base_url == "http://localhost:8080"
    assert config.sender == "digest <digest@localhost>"
    assert config.timezone == "UTC"
    assert config.database == f"sqlite:///{tmp_path.resolve() / 'digest.db'}"
    assert config.output_dir == tmp_path.resolve() / "public"
    assert config.subscribers_dir == tmp_path.resolve() / "subscribers"
    assert [(s.kind, s.name, s.base_url) for s in config.sources] == [
        ("huggingface", "huggingface", "https://huggingface.co")
    ]
    assert config.delivery.transport == "maildir"
    assert config.delivery.maildir == tmp_path.resolve() / "maildir"
    assert config.schedule is None
    assert config.templates is None
    assert config.data_dir == tmp_path.resolve()


def test_a_subscriber_with_only_email_and_keywords_gets_the_documented_defaults(
    tmp_path: Path,
) -> None:
    ada = load_subscriber(write(tmp_path, "ada.toml", ADA))

    assert (ada.slug, ada.path, ada.email) == ("ada", tmp_path / "ada.toml", "ada@example.org")
    assert (ada.frequency, ada.weekday, ada.max_papers, ada.min_upvotes, ada.send_empty) == (
        "daily",
        "mon",
        15,
        0,
        False,
    )
    assert ada.interests.description == ""
    assert ada.interests.exclude == ada.interests.authors == ada.interests.liked == ()


def test_relative_paths_resolve_against_the_config_folder_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "my-templates").mkdir(parents=True)
    write(site / "people", "ada.toml", ADA)
    config_path = write(
        site,
        "digest.toml",
        """\
        [digest]
        database = "sqlite:///state/digest.db"
        output_dir = "www/feeds"
        subscribers = "people"
        templates = "my-templates"

        [delivery]
        maildir = "out/maildir"
        """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(Path("../site/digest.toml"))

    root = site.resolve()
    assert config.path == config_path.resolve()
    assert config.database == f"sqlite:///{root}/state/digest.db"
    assert config.database.startswith("sqlite:////")
    assert config.output_dir == root / "www" / "feeds"
    assert config.subscribers_dir == root / "people"
    assert config.templates == root / "my-templates"
    assert config.delivery.maildir == root / "out" / "maildir"
    assert config.data_dir == root / "state"
    assert [s.slug for s in config.subscribers] == ["ada"]


def test_absolute_paths_and_non_sqlite_databases_are_kept_as_written(tmp_path: Path) -> None:
    out = tmp_path / "abs-out"
    config = load_config(
        setup(
            tmp_path,
            f"""\
            [digest]
            database = "postgresql://digest@db.example.org/digest"
            output_dir = "{out}"
            """,
        )
    )
    assert config.database == "postgresql://digest@db.example.org/digest"
    assert config.output_dir == out
    assert config.data_dir == tmp_path.resolve()


def test_sources_get_default_names_and_keep_their_settings(tmp_path: Path) -> None:
    config = load_config(
        setup(
            tmp_path,
            """\
            [[sources]]
            kind = "huggingface"
            base_url = "http://127.0.0.1:8000/"

            [[sources]]
            kind = "arxiv"
            categories = ["cs.CL", "cs.CV"]

            [[sources]]
            kind = "feed"
            url = "https://example.org/papers.atom"

            [[sources]]
            kind = "feed"
            name = "Lab blog"
            url = "https://lab.example.org/rss"
            """,
        )
    )
    assert [s.name for s in config.sources] == [
        "huggingface",
        "arxiv cs.CL,cs.CV",
        "https://example.org/papers.atom",
        "Lab blog",
    ]
    assert config.sources[0].base_url == "http://127.0.0.1:8000"
    assert config.sources[1].categories == ("cs.CL", "cs.CV")
    assert config.sources[2].url == "https://example.org/papers.atom"


def test_smtp_delivery_with_a_login_and_a_schedule_loads(tmp_path: Path) -> None:
    config = load_config(
        setup(
            tmp_path,
            """\
            [digest]
            timezone = "Europe/Berlin"
            sender = "Doe, Jane <jane@example.org>"

            [delivery]
            transport = "smtp"
            host = "smtp.example.org"
            security = "tls"
            username = "digest"
            password_env = "DIGEST_SMTP_PASSWORD"
            timeout = 12.5

            [schedule]
            cron = "30 6 * * mon-fri"
            """,
        )
    )
    delivery = config.delivery
    assert (delivery.transport, delivery.host, delivery.security) == (
        "smtp",
        "smtp.example.org",
        "tls",
    )
    assert delivery.port == 465  # the default port follows the security setting
    assert (delivery.username, delivery.password_env, delivery.timeout) == (
        "digest",
        "DIGEST_SMTP_PASSWORD",
        12.5,
    )
    assert config.schedule is not None and config.schedule.cron == "30 6 * * mon-fri"
    assert config.sender == '"Doe, Jane" <jane@example.org>'  # quoted: safe in a From header


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1", "mail.localhost"])
def test_an_unencrypted_connection_is_allowed_to_this_machine(tmp_path: Path, host: str) -> None:
    config = load_config(
        setup(tmp_path, f'[delivery]\ntransport = "smtp"\nhost = "{host}"\nsecurity = "none"\n')
    )
    assert config.delivery.security == "none"
    assert config.delivery.port == 25


def test_subscriber_settings_are_read_and_liked_ids_lose_their_version(tmp_path: Path) -> None:
    zoe = load_subscriber(
        write(
            tmp_path,
            "zoe.toml",
            """\
            name = "Zoë"
            email = "Zoe@Example.org"
            frequency = "weekly"
            weekday = "fri"
            max_papers = 5
            min_upvotes = 3
            send_empty = true

            [interests]
            description = "  Reasoning with reinforcement learning.  "
            keywords = [" GRPO ", "chain-of-thought"]
            exclude = ["medical"]
            authors = ["Albert Gu"]
            liked = ["2312.00752v2", "hep-th/9901001"]
            """,
        )
    )
    assert (zoe.name, zoe.email, zoe.frequency, zoe.weekday) == (
        "Zoë",
        "Zoe@Example.org",
        "weekly",
        "fri",
    )
    assert (zoe.max_papers, zoe.min_upvotes, zoe.send_empty) == (5, 3, True)
    assert zoe.interests.description == "Reasoning with reinforcement learning."
    assert zoe.interests.keywords == ("GRPO", "chain-of-thought")
    assert zoe.interests.liked == ("2312.00752", "hep-th/9901001")


def test_subscribers_are_loaded_in_file_name_order_and_other_files_are_ignored(
    tmp_path: Path,
) -> None:
    for slug in ("zed", "amy", "mia"):
        write(tmp_path, f"{slug}.toml", ADA.replace("ada@", f"{slug}@"))
    write(tmp_path, "README.md", "not a subscriber")
    assert [s.slug for s in load_subscribers(tmp_path)] == ["amy", "mia", "zed"]


# ------------------------------------------------------------------ errors: where they point


def test_a_wrong_type_names_the_file_the_key_and_the_line(tmp_path: Path) -> None:
    error = subscriber_error(
        tmp_path,
        """\
        name = "Ada"
        email = "ada@example.org"
        # a comment
        max_papers = "ten"

        [interests]
        keywords = ["mamba"]
        """,
    )
    assert (error.line, error.key, error.path) == (4, "max_papers", tmp_path / "ada.toml")
    message = str(error)
    assert str(tmp_path / "ada.toml") in message
    assert "line 4" in message and "max_papers" in message
    assert "expected an integer, got a string" in message


def test_broken_toml_names_the_line(tmp_path: Path) -> None:
    error = subscriber_error(tmp_path, 'email = "ada@example.org"\n\nmax_papers = = 3\n')
    assert error.line == 3
    assert "line 3" in str(error) and "not valid TOML" in str(error)
    assert str(tmp_path / "ada.toml") in str(error)


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ada.toml"
    path.write_bytes(b'email = "ada@example.org"\nname = "Zo\xeb"\n')
    with pytest.raises(ConfigError, match=r"line 2.*UTF-8"):
        load_subscriber(path)


def test_lines_are_found_inside_the_right_table_not_in_look_alike_text(tmp_path: Path) -> None:
    error = subscriber_error(
        tmp_path,
        '''\
        email = "ada@example.org"

        [interests]
        description = """
        keywords = ["this line is inside a string"]
        """
        exclude = ["x"]
        keywords = [
            "mamba",
            42,
        ]
        ''',
    )
    assert (error.key, error.line) == ("interests.keywords[1]", 10)
    assert "expected a string, got an integer" in str(error)


def test_a_problem_inside_the_third_source_names_that_source(tmp_path: Path) -> None:
    error = config_error(
        tmp_path,
        """\
        [[sources]]
        kind = "huggingface"

        [[sources]]
        kind = "arxiv"
        categories = ["cs.CL"]

        [[sources]]
        kind = "rss"
        url = "https://example.org/feed"
        """,
    )
    assert (error.key, error.line) == ("sources[2].kind", 9)
    assert '"rss" is not one of "huggingface", "arxiv", "feed"' in str(error)


def test_a_missing_digest_toml_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nowhere.toml")
    assert str(tmp_path / "nowhere.toml") in str(caught.value)
    assert "no such file; create one or pass --config" in str(caught.value)


def test_a_missing_required_key_has_no_line(tmp_path: Path) -> None:
    error = subscriber_error(tmp_path, '[interests]\nkeywords = ["mamba"]\n')
    assert (error.key, error.line) == ("email", None)
    assert "missing required key 'email'" in str(error)


# ------------------------------------------------------------------ errors: subscribers


def test_duplicate_emails_name_both_files_whatever_the_case(tmp_path: Path) -> None:
    write(tmp_path, "ada.toml", ADA)
    write(tmp_path, "lovelace.toml", ADA.replace("ada@example.org", "ADA@Example.ORG"))
    with pytest.raises(ConfigError) as caught:
        load_subscribers(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "ada.toml") in message and str(tmp_path / "lovelace.toml") in message
    assert caught.value.key == "email" and caught.value.line == 2


def test_an_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    error = subscriber_error(
        tmp_path,
        'email = "ada@example.org"\n\n[interests]\nkeyword = ["mamba"]\n',
    )
    assert (error.key, error.line) == ("interests.keyword", 4)
    assert "unknown key 'keyword'" in str(error) and "did you mean 'keywords'?" in str(error)


def test_a_top_level_key_written_after_the_interests_table_is_explained(tmp_path: Path) -> None:
    error = subscriber_error(
        tmp_path,
        'email = "ada@example.org"\n[interests]\nkeywords = ["mamba"]\nmax_papers = 5\n',
    )
    assert (error.key, error.line) == ("interests.max_papers", 4)
    assert "belongs above [interests]" in str(error)


def test_an_interest_key_at_the_top_level_points_to_the_interests_table(tmp_path: Path) -> None:
    error = subscriber_error(tmp_path, 'email = "ada@example.org"\nkeywords = ["mamba"]\n')
    assert error.key == "keywords" and "interests.keywords" in str(error)


@pytest.mark.parametrize(
    "interests",
    [
        "",
        'description = ""\nkeywords = []',
        'description = "   "',
        'exclude = ["medical"]\nauthors = ["Albert Gu"]',
    ],
)
def test_empty_interests_are_an_error_not_everything(tmp_path: Path, interests: str) -> None:
    error = subscriber_error(tmp_path, f'email = "ada@example.org"\n[interests]\n{interests}\n')
    assert "interests are empty" in str(error)
    assert error.line is not None and error.line >= 2


def test_a_subscriber_without_an_interests_table_is_refused(tmp_path: Path) -> None:
    error = subscriber_error(tmp_path, 'email = "ada@example.org"\n')
    assert "missing required key 'interests'" in str(error)


@pytest.mark.parametrize(
    "address",
    [
        "ada",
        "ada@",
        "@example.org",
        "ada @example.org",
        "ada@exa mple.org",
        "a..b@example.org",
        "ada@example..org",
        "ada@-example.org",
        "Ada <ada@example.org>",
        "ada@example.org, bob@example.org",
        "ada(comment)@example.org",
    ],
)
def test_implausible_email_addresses_are_refused(tmp_path: Path, address: str) -> None:
    error = subscriber_error(tmp_path, ADA.replace("ada@example.org", address))
    assert (error.key, error.line) == ("email", 2)


@pytest.mark.parametrize("address", ["ada@[é.org", "ada@é&co.org", "ada@bü_cher.org"])
def test_an_internationalised_domain_must_still_be_a_domain(tmp_path: Path, address: str) -> None:
    error = subscriber_error(tmp_path, ADA.replace("ada@example.org", address))
    assert (error.key, error.line) == ("email", 2)
    assert "not a valid domain name" in str(error)


def test_an_internationalised_domain_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "ada.toml", ADA.replace("ada@example.org", "ada@bücher.example"))
    assert load_subscriber(path).email == "ada@bücher.example"


def test_every_ascii_address_accepted_is_one_the_email_parser_reads_back_unchanged() -> None:
    rng = random.Random(8)
    atext, specials = "ab1-_.+'{}|~!#", '@"()<>[]\\,;: '
    accepted = 0
    for _ in range(3000):
        size = rng.randint(3, 10)
        address = "".join(
            rng.choice(atext if rng.random() < 0.9 else specials) for _ in range(size)
        )
        if rng.random() < 0.7:
            address = address.replace("@", "") + "@" + rng.choice(["ex.org", "a-b.c", "x"])
        if address_problem(address) is None:
            accepted += 1
            assert Address(addr_spec=address).addr_spec == address, address
    assert accepted > 100


def test_an_email_with_a_line_break_is_refused(tmp_path: Path) -> None:
    error = subscriber_error(
        tmp_path, ADA.replace("ada@example.org", "ada@example.org\\nBcc: x@y.z")
    )
    assert error.key == "email"


@pytest.mark.parametrize(
    ("setting", "key", "line", "fragment"),
    [
        ("max_papers = 0", "max_papers", 2, "between 1 and 100"),
        ("max_papers = 101", "max_papers", 2, "between 1 and 100"),
        ("max_papers = true", "max_papers", 2, "expected an integer, got a boolean"),
        ("max_papers = 1.5", "max_papers", 2, "expected an integer, got a float"),
        ("min_upvotes = -1", "min_upvotes", 2, "at least 0"),
        ('send_empty = "yes"', "send_empty", 2, "expected true or false, got a string"),
        ('frequency = "dialy"', "frequency", 2, "did you mean 'daily'?"),
        ('frequency = "weekly"\nweekday = "monday"', "weekday", 3, "did you mean 'mon'?"),
        ('weekday = "fri"', "weekday", 2, 'frequency = "weekly"'),
        ('name = ["Ada"]', "name", 2, "expected a string, got an array"),
        ('name = "Ada\\r\\nBcc: x@example.org"', "name", 2, "line breaks"),
    ],
)
def test_bad_subscriber_settings_are_refused_at_their_line(
    tmp_path: Path, setting: str, key: str, line: int, fragment: str
) -> None:
    text = f'email = "ada@example.org"\n{setting}\n[interests]\nkeywords = ["mamba"]\n'
    error = subscriber_error(tmp_path, text)
    assert (error.key, error.line) == (key, line)
    assert fragment in str(error)


def test_a_liked_entry_that_is_not_an_arxiv_id_is_refused(tmp_path: Path) -> None:
    error = subscriber_error(
        tmp_path,
        'email = "ada@example.org"\n[interests]\nkeywords = ["mamba"]\n'
        'liked = ["2312.00752", "mamba paper"]\n',
    )
    assert (error.key, error.line) == ("interests.liked[1]", 4)
    assert "not an arXiv id" in str(error)


def test_a_file_name_that_cannot_be_a_feed_address_is_refused(tmp_path: Path) -> None:
    error = subscriber_error(tmp_path, ADA, name="ada lovelace.toml")
    assert "file name" in str(error)


# ------------------------------------------------------------------ errors: digest.toml


def test_a_password_in_the_file_is_refused_with_a_pointer_to_password_env(tmp_path: Path) -> None:
    error = config_error(
        tmp_path,
        '[delivery]\ntransport = "smtp"\nhost = "smtp.example.org"\nusername = "d"\n'
        'password = "hunter2"\n',
    )
    assert (error.key, error.line) == ("delivery.password", 5)
    assert "password_env" in str(error)
    assert "hunter2" not in str(error)


def test_an_unencrypted_connection_to_another_machine_is_refused(tmp_path: Path) -> None:
    error = config_error(
        tmp_path,
        '[delivery]\ntransport = "smtp"\nhost = "smtp.example.org"\nsecurity = "none"\n',
    )
    assert (error.key, error.line) == ("delivery.security", 4)
    assert "clear text" in str(error) and "smtp.example.org" in str(error)


@pytest.mark.parametrize(
    ("config", "key", "line", "fragment"),
    [
        ('[digest]\ntitel = "x"', "digest.titel", 2, "did you mean 'title'?"),
        ('title = "x"', "title", 1, "digest.title"),
        ('[digest]\ntimezone = "Europe/Berln"', "digest.timezone", 2, "Europe/Berlin"),
        ('[digest]\nbase_url = "ftp://example.org"', "digest.base_url", 2, "http(s) URL"),
        ('[digest]\nsender = "Paper digest"', "digest.sender", 2, "Name <address@example.org>"),
        ('[digest]\nsender = "D <digest@>"', "digest.sender", 2, "name@example.org"),
        ('[digest]\ndatabase = "not a url"', "digest.database", 2, "SQLAlchemy URL"),
        ('[digest]\ntemplates = "missing"', "digest.templates", 2, "does not exist"),
        ('[digest]\nsubscribers = "missing"', "digest.subscribers", 2, "does not exist"),
        ('digest = "x"', "digest", 1, "expected a table, got a string"),
        ('[delivery]\ntransport = "smtp"', "delivery.host", 1, "needs the mail server"),
        ('[delivery]\ntransport = "sendmail"', "delivery.transport", 2, '"sendmail" is not one'),
        ("[delivery]\nport = 70000", "delivery.port", 2, "between 1 and 65535"),
        ('[delivery]\nport = "587"', "delivery.port", 2, "expected an integer, got a string"),
        ("[delivery]\ntimeout = 0", "delivery.timeout", 2, "more than 0"),
        ('[delivery]\nsecurity = "ssl"', "delivery.security", 2, '"ssl" is not one of'),
        ('[delivery]\nusername = "d"', "delivery.password_env", 1, "a login needs both"),
        ('[delivery]\nusername = "d"\npassword_env = "A-B"', "delivery.password_env", 3, "not an"),
        ('[schedule]\ncron = "0 7 * *"', "schedule.cron", 2, "Wrong number of fields"),
        ('[schedule]\ncron = "0 7 * * mon-fry"', "schedule.cron", 2, "fry"),
        ('[schedule]\nkron = "0 7 * * *"', "schedule.kron", 2, "did you mean 'cron'?"),
        ("sources = []", "sources", 1, "at least one"),
        ('[sources]\nkind = "feed"', "sources", 1, "array of tables"),
        ('[[sources]]\nkind = "arxiv"', "sources[0].categories", 1, "needs categories"),
        (
            '[[sources]]\nkind = "arxiv"\ncategoies = ["cs.CL"]',
            "sources[0].categoies",
            3,
            "'categories'",
        ),
        (
            '[[sources]]\nkind = "arxiv"\ncategories = ["cs/CL"]',
            "sources[0].categories[0]",
            3,
            "category",
        ),
        ('[[sources]]\nkind = "feed"', "sources[0].url", 1, "missing required key 'url'"),
        ('[[sources]]\nkind = "feed"\nurl = "example.org/feed"', "sources[0].url", 3, "http(s)"),
        (
            '[[sources]]\nkind = "feed"\nbase_url = "https://x.org"',
            "sources[0].base_url",
            3,
            "'url'",
        ),
        (
            '[[sources]]\nkind = "huggingface"\n[[sources]]\nkind = "huggingface"',
            "sources[1].name",
            3,
            "already used",
        ),
    ],
)
def test_bad_settings_in_digest_toml_are_refused_at_their_line(
    tmp_path: Path, config: str, key: str, line: int, fragment: str
) -> None:
    error = config_error(tmp_path, config + "\n")
    assert (error.key, error.line) == (key, line)
    assert fragment in str(error)
    assert str(tmp_path / "digest.toml") in str(error)


def test_a_broken_subscriber_stops_loading_the_config(tmp_path: Path) -> None:
    error = config_error(tmp_path, "", ada=ADA, bob='email = "bob@example.org"\n[interests]\n')
    assert error.path.name == "bob.toml"
    assert "interests are empty" in str(error)
