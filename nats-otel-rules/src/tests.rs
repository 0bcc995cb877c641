#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::*;

const ALL_USAGES: [Usage; 4] = [Usage::Publish, Usage::Subscribe, Usage::Template, Usage::PublishTemplate];

fn err(input: &str, usage: Usage) -> SubjectError {
    match Subject::parse(input, usage) {
        Ok(s) => panic!("expected {input:?} to be rejected for {usage:?}, got {s:?}"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_err(input: &str, usage: Usage, kind: ErrorKind, range: Range<usize>) {
    let e = err(input, usage);
    assert_eq!((e.kind.clone(), e.range.clone()), (kind, range), "{input:?} for {usage:?}: {e}");
}

#[track_caller]
fn assert_err_all(input: &str, kind: ErrorKind, range: Range<usize>) {
    for usage in ALL_USAGES {
        assert_err(input, usage, kind.clone(), range.clone());
    }
}

fn parse(input: &str) -> Subject<'_> {
    Subject::parse(input, Usage::Template).unwrap()
}

fn tokens<'a>(s: &Subject<'a>) -> Vec<Token<'a>> {
    s.segments().iter().map(|s| s.token).collect()
}

// ---------------------------------------------------------------- parsing

#[test]
fn parses_literals_with_ranges() {
    let s = Subject::parse("orders.eu.created", Usage::Publish).unwrap();
    assert_eq!(s.as_str(), "orders.eu.created");
    assert_eq!(
        s.segments(),
        [
            Segment { token: Token::Literal("orders"), range: 0..6 },
            Segment { token: Token::Literal("eu"), range: 7..9 },
            Segment { token: Token::Literal("created"), range: 10..17 },
        ]
    );
    assert!(!s.has_wildcards());
    assert_eq!(s.to_string(), "orders.eu.created");
}

#[test]
fn parses_single_token_and_utf8() {
    let s = Subject::parse("ö.ü", Usage::Publish).unwrap();
    assert_eq!(tokens(&s), [Token::Literal("ö"), Token::Literal("ü")]);
    assert_eq!(s.segments()[1].range, 3..5);
    assert!(Subject::parse("orders", Usage::Publish).is_ok());
    assert!(Subject::parse("a-b_c:d$e#f", Usage::Publish).is_ok());
    assert!(Subject::parse("$JS.API.STREAM.INFO", Usage::Publish).is_ok());
}

#[test]
fn parses_wildcards_and_captures() {
    assert_err("a.*.{x}.>", Usage::Template, ErrorKind::TailWithCapture, 8..9);
    let s = parse("a.*.{x}.{_y1}");
    assert_eq!(tokens(&s), [Token::Literal("a"), Token::Any, Token::Capture("x"), Token::Capture("_y1")]);
    assert_eq!(s.segments()[2].range, 4..7);
    assert!(s.has_wildcards());
    let s = Subject::parse("*.>", Usage::Subscribe).unwrap();
    assert_eq!(tokens(&s), [Token::Any, Token::Tail]);
    let s = Subject::parse(">", Usage::Subscribe).unwrap();
    assert_eq!(tokens(&s), [Token::Tail]);
    assert!(s.has_wildcards());
    assert!(Subject::parse("*", Usage::Subscribe).unwrap().has_wildcards());
}

#[test]
fn usage_rules() {
    // Publish: concrete only.
    assert!(Subject::parse("a.b", Usage::Publish).is_ok());
    assert_err("a.*", Usage::Publish, ErrorKind::WildcardNotAllowed, 2..3);
    assert_err("a.>", Usage::Publish, ErrorKind::WildcardNotAllowed, 2..3);
    assert_err("a.{x}", Usage::Publish, ErrorKind::CaptureNotAllowed, 2..5);
    // Subscribe: wildcards, no captures.
    assert!(Subject::parse("a.*.>", Usage::Subscribe).is_ok());
    assert_err("a.{x}.>", Usage::Subscribe, ErrorKind::CaptureNotAllowed, 2..5);
    // Template: everything (but not `>` with captures).
    assert!(Subject::parse("a.*.{x}", Usage::Template).is_ok());
    assert!(Subject::parse("a.*.>", Usage::Template).is_ok());
    assert!(Subject::parse("a.b", Usage::Template).is_ok());
    // PublishTemplate: captures, no wildcards.
    assert!(Subject::parse("a.{x}.b", Usage::PublishTemplate).is_ok());
    assert_err("a.{x}.*", Usage::PublishTemplate, ErrorKind::WildcardNotAllowed, 6..7);
    assert_err("a.{x}.>", Usage::PublishTemplate, ErrorKind::WildcardNotAllowed, 6..7);
}

#[test]
fn usage_lattice_on_samples() {
    for input in ["a", "a.b", "*", ">", "a.*", "a.>", "{x}", "a.{x}", "{x}.*", "{x}.>", "*.{x}.{y}", "a..b"] {
        let ok = |u| Subject::parse(input, u).is_ok();
        if ok(Usage::Publish) {
            assert!(ALL_USAGES.iter().all(|&u| ok(u)), "{input}");
        }
        if ok(Usage::Subscribe) || ok(Usage::PublishTemplate) {
            assert!(ok(Usage::Template), "{input}");
        }
    }
}

#[test]
fn error_empty() {
    assert_err_all("", ErrorKind::Empty, 0..0);
}

#[test]
fn error_empty_token() {
    assert_err_all(".", ErrorKind::EmptyToken, 0..1);
    assert_err_all("..", ErrorKind::EmptyToken, 0..1);
    assert_err_all(".a", ErrorKind::EmptyToken, 0..1);
    assert_err_all("a.", ErrorKind::EmptyToken, 1..2);
    assert_err_all("a..b", ErrorKind::EmptyToken, 1..3);
    assert_err_all("abc.def..", ErrorKind::EmptyToken, 7..9);
    assert_err_all("ö..b", ErrorKind::EmptyToken, 2..4);
    assert_err_all("a.b.", ErrorKind::EmptyToken, 3..4);
}

#[test]
fn error_whitespace() {
    assert_err_all(" ", ErrorKind::Whitespace, 0..1);
    assert_err_all("a b", ErrorKind::Whitespace, 1..2);
    assert_err_all("a  \t b", ErrorKind::Whitespace, 1..5);
    assert_err_all("a.b\n", ErrorKind::Whitespace, 3..4);
    assert_err_all("a\r\n.b", ErrorKind::Whitespace, 1..3);
    assert_err_all("a.\u{a0}", ErrorKind::Whitespace, 2..4);
    assert_err_all("a\u{2003}b", ErrorKind::Whitespace, 1..4);
    assert_err_all("a\u{3000}", ErrorKind::Whitespace, 1..4);
    assert_err_all("{a b}", ErrorKind::Whitespace, 2..3);
    assert_err_all("* ", ErrorKind::Whitespace, 1..2);
    assert_err_all(" .a", ErrorKind::Whitespace, 0..1);
}

#[test]
fn error_control_character() {
    assert_err_all("a\0b", ErrorKind::ControlCharacter, 1..2);
    assert_err_all("a.\u{7f}", ErrorKind::ControlCharacter, 2..3);
    assert_err_all("\u{1b}[0m", ErrorKind::ControlCharacter, 0..1);
    assert_err_all("a.\u{85}", ErrorKind::Whitespace, 2..4); // NEL is whitespace
    assert_err_all("a.\u{9b}", ErrorKind::ControlCharacter, 2..4); // C1
    assert_err_all("a\u{1}\u{2}", ErrorKind::ControlCharacter, 1..2);
}

#[test]
fn error_partial_wildcard() {
    for (input, range) in [
        ("ord*", 0..4),
        ("*x", 0..2),
        ("a>b", 0..3),
        (">x", 0..2),
        ("orders.ord*", 7..11),
        ("a.**", 2..4),
        ("a.>>", 2..4),
        ("a.*>", 2..4),
        ("a.ö*", 2..5),
    ] {
        assert_err_all(input, ErrorKind::PartialWildcard, range);
    }
    let e = err("orders.ord*", Usage::Subscribe);
    assert_eq!(e.message(), "`ord*` is not a valid token: `*` must be a whole token");
    let e = err("a>b", Usage::Subscribe);
    assert_eq!(e.message(), "`a>b` is not a valid token: `>` must be a whole token");
}

#[test]
fn error_tail_not_last() {
    assert_err(">.a", Usage::Subscribe, ErrorKind::TailNotLast, 0..1);
    assert_err("a.>.b", Usage::Subscribe, ErrorKind::TailNotLast, 2..3);
    assert_err("a.>.>", Usage::Template, ErrorKind::TailNotLast, 2..3);
    // A disallowed wildcard is reported as such first.
    assert_err("a.>.b", Usage::Publish, ErrorKind::WildcardNotAllowed, 2..3);
    assert_err("a.>.b", Usage::PublishTemplate, ErrorKind::WildcardNotAllowed, 2..3);
    // `>` not last is reported before `>` with captures.
    assert_err("{x}.>.b", Usage::Template, ErrorKind::TailNotLast, 4..5);
    // A trailing dot after `>`: the `>` is not the last token.
    assert_err("a.>.", Usage::Subscribe, ErrorKind::TailNotLast, 2..3);
}

#[test]
fn error_wildcard_not_allowed() {
    for usage in [Usage::Publish, Usage::PublishTemplate] {
        assert_err("*", usage, ErrorKind::WildcardNotAllowed, 0..1);
        assert_err(">", usage, ErrorKind::WildcardNotAllowed, 0..1);
        assert_err("a.b.*.c", usage, ErrorKind::WildcardNotAllowed, 4..5);
    }
    let e = err("orders.*", Usage::Publish);
    assert_eq!(e.message(), "wildcard `*` is not allowed in a publish subject");
    let e = err("orders.>", Usage::PublishTemplate);
    assert_eq!(e.message(), "wildcard `>` is not allowed in a message subject");
    assert!(e.help().contains("{region}"));
}

#[test]
fn error_capture_not_allowed() {
    for usage in [Usage::Publish, Usage::Subscribe] {
        assert_err("{x}", usage, ErrorKind::CaptureNotAllowed, 0..3);
        assert_err("a.{region}.b", usage, ErrorKind::CaptureNotAllowed, 2..10);
    }
    assert_eq!(
        err("a.{region}", Usage::Subscribe).message(),
        "capture `{region}` is not allowed in a subscription subject"
    );
    assert_eq!(
        err("a.{region}", Usage::Publish).message(),
        "capture `{region}` is not allowed in a publish subject"
    );
}

#[test]
fn error_invalid_capture() {
    for (input, range) in [
        ("{}", 0..2),
        ("{", 0..1),
        ("}", 0..1),
        ("{a", 0..2),
        ("a}", 0..2),
        ("x{a}", 0..4),
        ("{a}x", 0..4),
        ("{1a}", 0..4),
        ("{a-b}", 0..5),
        ("{ö}", 0..4),
        ("{{a}}", 0..5),
        ("{a}}", 0..4),
        ("{*}", 0..3),
        ("{>}", 0..3),
        ("a.{b.c}", 2..4), // `{b` is unclosed
        ("a.b}", 2..4),
    ] {
        assert_err_all(input, ErrorKind::InvalidCapture, range);
    }
    assert_eq!(err("{}", Usage::Template).message(), "`{}` is an empty capture: a capture needs a name");
    assert_eq!(err("{abc", Usage::Template).message(), "`{abc` has an unclosed `{`");
    assert_eq!(err("abc}", Usage::Template).message(), "`abc}` has an unmatched `}`");
    assert_eq!(
        err("{1a}", Usage::Template).message(),
        "`{1a}` is not a valid capture: `1a` is not an identifier"
    );
    assert_eq!(
        err("x{a}", Usage::Template).message(),
        "`x{a}` is not a valid token: a capture `{name}` must be a whole token"
    );
}

#[test]
fn error_duplicate_capture() {
    for usage in [Usage::Template, Usage::PublishTemplate] {
        assert_err("{a}.{b}.{a}", usage, ErrorKind::DuplicateCapture("a".to_owned()), 8..11);
    }
    let e = err("x.{id}.{id}", Usage::Template);
    assert_eq!(e.message(), "capture `{id}` is used more than once");
    assert_eq!(e.snippet(), "{id}");
    // Names are case-sensitive.
    assert!(Subject::parse("{a}.{A}", Usage::Template).is_ok());
}

#[test]
fn error_tail_with_capture() {
    assert_err("orders.{region}.>", Usage::Template, ErrorKind::TailWithCapture, 16..17);
    assert_err("{a}.*.>", Usage::Template, ErrorKind::TailWithCapture, 6..7);
    assert_eq!(err("{a}.>", Usage::Template).message(), "`>` cannot be combined with captures");
}

#[test]
fn first_error_in_reading_order() {
    assert_err("a b.ord*", Usage::Template, ErrorKind::Whitespace, 1..2);
    assert_err("ord*.a b", Usage::Template, ErrorKind::PartialWildcard, 0..4);
    assert_err("a..b c", Usage::Template, ErrorKind::EmptyToken, 1..3);
    assert_err("{x}.*.a b", Usage::Publish, ErrorKind::CaptureNotAllowed, 0..3);
    assert_err("*.{x}", Usage::Publish, ErrorKind::WildcardNotAllowed, 0..1);
    assert_err("{x}.{x}.>", Usage::Template, ErrorKind::DuplicateCapture("x".into()), 4..7);
    // Within a token, characters first.
    assert_err("or d*", Usage::Template, ErrorKind::Whitespace, 2..3);
    assert_err("{a\0}", Usage::Template, ErrorKind::ControlCharacter, 2..3);
}

#[test]
fn error_messages_help_and_display() {
    let cases: &[(&str, Usage)] = &[
        ("", Usage::Publish),
        (".a", Usage::Publish),
        ("a.", Usage::Publish),
        ("a..b", Usage::Publish),
        ("a b", Usage::Publish),
        ("a\tb", Usage::Publish),
        ("a\u{0}", Usage::Publish),
        ("ord*", Usage::Publish),
        ("a.>.b", Usage::Subscribe),
        ("a.*", Usage::Publish),
        ("a.*", Usage::PublishTemplate),
        ("a.{x}", Usage::Publish),
        ("a.{x}", Usage::Subscribe),
        ("{", Usage::Template),
        ("{x}.{x}", Usage::Template),
        ("{x}.>", Usage::Template),
    ];
    for &(input, usage) in cases {
        let e = err(input, usage);
        let m = e.message();
        assert!(!m.is_empty() && !e.help().is_empty(), "{input:?}");
        assert!(!m.starts_with(char::is_uppercase), "{m}");
        assert!(!m.ends_with('.'), "{m}");
        assert!(!e.help().ends_with('.'), "{}", e.help());
        assert!(e.to_string().starts_with(&m));
        assert_eq!(e.input(), input);
        assert_eq!(e.usage(), usage);
        assert_eq!(e.snippet(), &input[e.range.clone()]);
        let _: &dyn std::error::Error = &e;
    }
    assert_eq!(err("", Usage::Publish).to_string(), "subject is empty");
    assert_eq!(
        err(".a", Usage::Publish).message(),
        "subject must not start with `.`: tokens must not be empty"
    );
    assert_eq!(
        err("a.", Usage::Publish).message(),
        "subject must not end with `.`: tokens must not be empty"
    );
    assert_eq!(err("a..b", Usage::Publish).message(), "`..` leaves an empty token: tokens must not be empty");
    assert_eq!(
        err("a b", Usage::Publish).to_string(),
        "subject must not contain whitespace, found a space (at bytes 1..2 of `a b`)"
    );
    assert_eq!(
        err("a\tb", Usage::Publish).to_string(),
        "subject must not contain whitespace, found a tab (at bytes 1..2 of `a\\tb`)"
    );
    assert_eq!(
        err("a\u{0}", Usage::Publish).message(),
        "subject must not contain control character `\\u{0}`"
    );
    assert_eq!(
        err("a.ord*", Usage::Publish).help(),
        "use `*` for one whole token or `>` for the rest, e.g. `orders.*`"
    );
}

// ------------------------------------------------------------- accessors

#[test]
fn pattern_renders_captures_as_star() {
    assert_eq!(parse("orders.{region}.created").pattern(), "orders.*.created");
    assert_eq!(parse("{a}.{b}").pattern(), "*.*");
    assert_eq!(parse("a.*.>").pattern(), "a.*.>");
    assert_eq!(parse("ö.ü").pattern(), "ö.ü");
}

#[test]
fn captures_and_capture_index() {
    let s = parse("x.{a}.*.{b}");
    assert_eq!(s.captures().collect::<Vec<_>>(), [("a", 2..5), ("b", 8..11)]);
    assert_eq!(s.capture_index("a"), Some(1));
    assert_eq!(s.capture_index("b"), Some(3));
    assert_eq!(s.capture_index("x"), None);
    assert_eq!(s.capture_index("{a}"), None);
    assert_eq!(parse("a.*").captures().count(), 0);
    // Capture ranges point at `{name}` in the input.
    let input = "orders.{region}.{kind}";
    let s = parse(input);
    for (name, range) in s.captures() {
        assert_eq!(&input[range], format!("{{{name}}}"));
    }
}

#[test]
fn token_at_works() {
    assert_eq!(token_at("a.b.c", 0), Some("a"));
    assert_eq!(token_at("a.b.c", 2), Some("c"));
    assert_eq!(token_at("a.b.c", 3), None);
    assert_eq!(token_at("a", 0), Some("a"));
    assert_eq!(token_at("", 0), None);
    assert_eq!(token_at("a..c", 1), None);
    assert_eq!(token_at("ö.ü", 1), Some("ü"));
    assert_eq!(token_at("a.b", usize::MAX), None);
}

#[test]
fn token_helpers() {
    assert!(!Token::Literal("a").is_wildcard());
    assert!(Token::Any.is_wildcard());
    assert!(Token::Tail.is_wildcard());
    assert!(Token::Capture("x").is_wildcard());
}

// ---------------------------------------------------------------- matching

#[track_caller]
fn check_match(pattern: &str, subject: &str, expected: bool) {
    assert_eq!(matches(pattern, subject), expected, "matches({pattern:?}, {subject:?})");
    if let Ok(p) = Subject::parse(pattern, Usage::Template) {
        assert_eq!(p.is_match(subject), expected, "is_match({pattern:?}, {subject:?})");
        assert_eq!(matches(&p.pattern(), subject), expected, "pattern() of {pattern:?}");
    } else {
        assert!(!expected);
    }
}

#[test]
fn matching_literals() {
    check_match("a", "a", true);
    check_match("a.b", "a.b", true);
    check_match("a.b", "a.c", false);
    check_match("a.b", "a", false);
    check_match("a", "a.b", false);
    check_match("a.b", "a.bb", false);
    check_match("ö.ü", "ö.ü", true);
}

#[test]
fn matching_star_is_exactly_one_token() {
    check_match("*", "a", true);
    check_match("*", "a.b", false);
    check_match("a.*", "a.b", true);
    check_match("a.*", "a", false);
    check_match("a.*", "a.b.c", false);
    check_match("*.*", "a.b", true);
    check_match("a.*.c", "a.b.c", true);
    check_match("a.*.c", "a.b.d", false);
}

#[test]
fn matching_tail_is_one_or_more_tokens() {
    check_match(">", "a", true);
    check_match(">", "a.b.c", true);
    check_match("a.>", "a", false);
    check_match("a.>", "a.b", true);
    check_match("a.>", "a.b.c", true);
    check_match("a.>", "b.c", false);
    check_match("a.*.>", "a.b", false);
    check_match("a.*.>", "a.b.c", true);
}

#[test]
fn matching_captures_are_one_token() {
    check_match("orders.{region}.created", "orders.eu.created", true);
    check_match("orders.{region}.created", "orders.eu.west.created", false);
    check_match("{a}.{b}", "x.y", true);
    check_match("{a}", "x.y", false);
}

#[test]
fn matching_rejects_invalid_patterns() {
    for pattern in [
        "", ".", "a.", ".a", "a..b", "ord*", "a.>.b", "{", "{}", "x{a}", "{a}.{a}", "{a}.>", "a b", "a.\u{0}",
    ] {
        for subject in ["a", "a.b", "a.a", "ord*", "x.y.z", "{a}.{a}", "a b"] {
            check_match(pattern, subject, false);
        }
    }
    // Invalid patterns are rejected even when a prefix would match.
    check_match("a.>.b", "a.x.b", false);
    check_match("{a}.{a}", "x.y", false);
    check_match("{a}.>", "x.y", false);
}

#[test]
fn matching_rejects_invalid_subjects() {
    for subject in ["", ".", "a.", ".a", "a..b", "a b", "a.\t", "a.\u{7f}", "a.*", "a.>", "*", ">"] {
        for pattern in [">", "a.>", "*.*", "a.*", "*", "{x}.{y}"] {
            check_match(pattern, subject, false);
        }
    }
    // Invalid tokens after the matched part are still rejected by `>`.
    check_match("a.>", "a.b.", false);
    check_match("a.>", "a.b.c d", false);
}

#[test]
fn matching_treats_nats_literal_data_as_data() {
    // NATS accepts these in published subjects; they are plain data.
    check_match("a.*", "a.b*", true);
    check_match("a.*", "a.{x}", true);
    check_match("a.>", "a.x>y.{", true);
    check_match("a.{v}", "a.}", true);
    check_match("a.*", "a.ö", true);
}

// ----------------------------------------------------------------- covers

#[track_caller]
fn check_covers(a: &str, b: &str, expected: bool) {
    assert_eq!(parse(a).covers(&parse(b)), expected, "{a:?} covers {b:?}");
    assert_eq!(crate::covers(a, b), expected, "const covers({a:?}, {b:?})");
}

#[test]
fn covers_examples() {
    check_covers("orders.>", "orders.*.created", true);
    check_covers("orders.*", "orders.>", false);
    check_covers("a.*", "a.b", true);
    check_covers("a.b", "a.*", false);
    check_covers("a.b", "a.b", true);
    check_covers("a.b", "a.c", false);
    check_covers(">", ">", true);
    check_covers(">", "a", true);
    check_covers(">", "*.*", true);
    check_covers("a.>", "a", false);
    check_covers("a.>", "a.>", true);
    check_covers("a.>", "a.b.>", true);
    check_covers("a.b.>", "a.>", false);
    check_covers("a.*.>", "a.>", false);
    check_covers("a.>", "a.*.>", true);
    check_covers("*", ">", false);
    check_covers("*.>", ">", false);
    check_covers("*", "*", true);
    check_covers("a", "a.b", false);
    check_covers("a.b", "a", false);
    check_covers("*.*", "*", false);
}

#[test]
fn covers_with_captures() {
    check_covers("orders.{region}.created", "orders.*.created", true);
    check_covers("orders.*.created", "orders.{region}.created", true);
    check_covers("orders.{a}", "orders.{b}", true);
    check_covers("orders.{a}", "orders.eu", true);
    check_covers("orders.eu", "orders.{a}", false);
    check_covers("orders.>", "orders.{region}.created", true);
    check_covers("{a}.*", "{b}.{c}", true);
    check_covers("{a}.b", "{b}.{c}", false);
}

#[test]
fn covers_across_usages() {
    let sub = Subject::parse("orders.>", Usage::Subscribe).unwrap();
    let msg = Subject::parse("orders.{region}.created", Usage::PublishTemplate).unwrap();
    let concrete = Subject::parse("orders.eu.created", Usage::Publish).unwrap();
    assert!(sub.covers(&msg) && msg.covers(&concrete) && sub.covers(&concrete));
    assert!(!concrete.covers(&msg) && !msg.covers(&sub));
}

// ------------------------------------------------------------------ names

#[track_caller]
fn name_err(r: Result<(), NameError>, kind: NameErrorKind, range: Range<usize>) {
    let e = r.unwrap_err();
    assert_eq!((e.kind.clone(), e.range.clone()), (kind, range), "{e}");
    assert!(!e.message().is_empty() && !e.help().is_empty());
    let _: &dyn std::error::Error = &e;
}

#[test]
fn stream_and_consumer_names() {
    for ok in ["ORDERS", "orders-v2", "a_b", "ö", "A{b}", "x:y", "$x"] {
        assert!(validate_name(ok).is_ok(), "{ok}");
    }
    name_err(validate_name(""), NameErrorKind::Empty, 0..0);
    name_err(validate_name("a b"), NameErrorKind::Whitespace, 1..2);
    name_err(validate_name("a \t"), NameErrorKind::Whitespace, 1..3);
    name_err(validate_name("a\u{a0}"), NameErrorKind::Whitespace, 1..3);
    name_err(validate_name("a\0"), NameErrorKind::ForbiddenCharacter('\0'), 1..2);
    name_err(validate_name("a\u{7f}"), NameErrorKind::ForbiddenCharacter('\u{7f}'), 1..2);
    for c in ['.', '*', '>', '/', '\\'] {
        name_err(validate_name(&format!("ab{c}d")), NameErrorKind::ForbiddenCharacter(c), 2..3);
    }
    // First problem in reading order.
    name_err(validate_name("a.b c"), NameErrorKind::ForbiddenCharacter('.'), 1..2);
    name_err(validate_name("a b.c"), NameErrorKind::Whitespace, 1..2);
    // Length in bytes.
    assert!(validate_name(&"x".repeat(MAX_NAME_LEN)).is_ok());
    name_err(validate_name(&"x".repeat(256)), NameErrorKind::TooLong, 255..256);
    name_err(validate_name(&"x".repeat(300)), NameErrorKind::TooLong, 255..300);
    // 127 two-byte chars = 254 bytes, then one more: starts at 254, ends at 256.
    name_err(validate_name(&"ö".repeat(128)), NameErrorKind::TooLong, 254..256);
    // Characters before length.
    name_err(
        validate_name(&format!("{}.", "x".repeat(300))),
        NameErrorKind::ForbiddenCharacter('.'),
        300..301,
    );
    let e = validate_name(&"x".repeat(256)).unwrap_err();
    assert_eq!(e.message(), "stream or consumer name is too long: 256 bytes, at most 255 are allowed");
    let e = validate_name("a.b").unwrap_err();
    assert_eq!(e.message(), "stream or consumer name must not contain `.`");
    assert_eq!(e.to_string(), "stream or consumer name must not contain `.` (at bytes 1..2)");
    let e = validate_name("").unwrap_err();
    assert_eq!(e.to_string(), "stream or consumer name must not be empty");
}

#[test]
fn queue_groups() {
    for ok in ["workers", "orders.workers", "a/b", "ö", "a-b_c"] {
        assert!(validate_queue_group(ok).is_ok(), "{ok}");
    }
    name_err(validate_queue_group(""), NameErrorKind::Empty, 0..0);
    name_err(validate_queue_group("a b"), NameErrorKind::Whitespace, 1..2);
    name_err(validate_queue_group("a\n"), NameErrorKind::Whitespace, 1..2);
    name_err(validate_queue_group("a\u{1}"), NameErrorKind::ForbiddenCharacter('\u{1}'), 1..2);
    name_err(validate_queue_group("a.*"), NameErrorKind::ForbiddenCharacter('*'), 2..3);
    name_err(validate_queue_group(">"), NameErrorKind::ForbiddenCharacter('>'), 0..1);
    assert!(validate_queue_group(&"q".repeat(1000)).is_ok());
    assert_eq!(validate_queue_group("a b").unwrap_err().message(), "queue group must not contain whitespace");
}

#[test]
fn token_values() {
    for ok in ["eu", "eu-west-1", "ö", "{x}", "a/b", "a:b"] {
        assert!(validate_token_value(ok).is_ok(), "{ok}");
    }
    name_err(validate_token_value(""), NameErrorKind::Empty, 0..0);
    name_err(validate_token_value("a.b"), NameErrorKind::ForbiddenCharacter('.'), 1..2);
    name_err(validate_token_value("*"), NameErrorKind::ForbiddenCharacter('*'), 0..1);
    name_err(validate_token_value("ab>"), NameErrorKind::ForbiddenCharacter('>'), 2..3);
    name_err(validate_token_value("ö ü"), NameErrorKind::Whitespace, 2..3);
    name_err(validate_token_value("\u{9f}"), NameErrorKind::ForbiddenCharacter('\u{9f}'), 0..2);
    assert!(validate_token_value(&"v".repeat(1000)).is_ok());
    assert_eq!(
        validate_token_value("\u{0}").unwrap_err().message(),
        "subject token value must not contain `\\u{0}`"
    );
    // A valid token value rendered into a capture yields a matching subject.
    let p = parse("orders.{region}.created");
    for v in ["eu", "{x}", "ö", "a}"] {
        assert!(validate_token_value(v).is_ok());
        assert!(p.is_match(&format!("orders.{v}.created")), "{v}");
    }
}

// ------------------------------------------------------ property checks

/// Deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Reference: is `t` a token of a concrete (publishable) subject?
fn ref_concrete_token(t: &str) -> bool {
    !t.is_empty() && t != "*" && t != ">" && t.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// Reference matcher over token lists, written independently of the crate:
/// recursive, with the pattern already known to be valid.
fn ref_match(pattern: &[&str], subject: &[&str]) -> bool {
    match (pattern.split_first(), subject.split_first()) {
        (None, None) => true,
        (Some((&">", [])), Some(_)) => true,
        (Some((p, prest)), Some((s, srest))) => {
            let one = *p == "*" || (p.starts_with('{') && p.ends_with('}')) || p == s;
            one && *p != ">" && ref_match(prest, srest)
        }
        _ => false,
    }
}

fn ref_matches(pattern: &str, subject: &str) -> bool {
    let Ok(_) = Subject::parse(pattern, Usage::Template) else {
        return false;
    };
    let s: Vec<&str> = subject.split('.').collect();
    if !s.iter().all(|t| ref_concrete_token(t)) {
        return false;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    ref_match(&p, &s)
}

/// Random strings over a small alphabet that hits every grammar rule.
fn random_string(rng: &mut Rng) -> String {
    const ALPHABET: &[&str] = &[
        "a", "b", ".", ".", ".", "*", ">", "{", "}", "{x}", "{y}", "x", "_", "1", " ", "\t", "\0", "\u{7f}",
        "ö", "ü", "\u{a0}", "\u{2003}", "\u{85}", "\u{9b}", "é",
    ];
    let len = rng.below(9);
    (0..len).map(|_| *rng.pick(ALPHABET)).collect()
}

/// Random subjects built from tokens, mostly valid.
fn random_tokens(rng: &mut Rng, tokens: &[&str], max: usize) -> String {
    let n = 1 + rng.below(max);
    (0..n).map(|_| *rng.pick(tokens)).collect::<Vec<_>>().join(".")
}

#[track_caller]
fn check_invariants(input: &str) {
    for usage in ALL_USAGES {
        match Subject::parse(input, usage) {
            Ok(s) => {
                assert_eq!(s.as_str(), input);
                // Segments tile the input.
                let mut pos = 0;
                for seg in s.segments() {
                    assert_eq!(seg.range.start, pos);
                    let text = &input[seg.range.clone()];
                    match seg.token {
                        Token::Literal(l) => assert_eq!(l, text),
                        Token::Any => assert_eq!(text, "*"),
                        Token::Tail => assert_eq!(text, ">"),
                        Token::Capture(n) => assert_eq!(text, format!("{{{n}}}")),
                    }
                    pos = seg.range.end + 1;
                }
                assert_eq!(pos, input.len() + 1);
                // Re-parsing the pattern keeps the token layout.
                let p = s.pattern();
                let q = Subject::parse(&p, Usage::Subscribe).unwrap();
                assert_eq!(q.segments().len(), s.segments().len());
                assert!(s.covers(&q) && q.covers(&s) && s.covers(&s));
                if usage == Usage::Publish {
                    assert!(matches(input, input), "{input:?}");
                    assert!(!s.has_wildcards());
                }
            }
            Err(e) => {
                assert!(e.range.start <= e.range.end && e.range.end <= input.len());
                assert!(input.get(e.range.clone()).is_some(), "range on char boundary");
                assert!(!e.message().is_empty());
                assert!(!e.help().is_empty());
                assert!(!e.to_string().is_empty());
                if e.kind != ErrorKind::Empty {
                    assert!(!e.range.is_empty(), "{input:?}: {e:?}");
                }
            }
        }
    }
    for r in [validate_name(input), validate_queue_group(input), validate_token_value(input)] {
        if let Err(e) = r {
            assert!(input.get(e.range.clone()).is_some());
            assert!(!e.message().is_empty() && !e.help().is_empty());
        }
    }
    let _ = token_at(input, 1);
}

#[test]
fn property_random_strings_never_panic_and_agree() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let subjects_tokens = ["a", "b", "ö", "{x}", "*", "", "a b"];
    let pattern_tokens = ["a", "ö", "*", ">", "{x}", "{y}", "", "ord*", "{", "a\tb"];
    let (mut valid, mut matched) = (0, 0);
    for _ in 0..20_000 {
        let p = if rng.below(2) == 0 {
            random_string(&mut rng)
        } else {
            random_tokens(&mut rng, &pattern_tokens, 4)
        };
        check_invariants(&p);
        let s = if rng.below(2) == 0 {
            random_string(&mut rng)
        } else {
            random_tokens(&mut rng, &subjects_tokens, 4)
        };
        let expected = ref_matches(&p, &s);
        assert_eq!(matches(&p, &s), expected, "matches({p:?}, {s:?})");
        let parsed = Subject::parse(&p, Usage::Template).is_ok_and(|x| x.is_match(&s));
        assert_eq!(parsed, expected, "is_match({p:?}, {s:?})");
        valid += usize::from(Subject::parse(&p, Usage::Template).is_ok());
        matched += usize::from(expected);
    }
    // The generator must exercise both outcomes.
    assert!(valid > 2_000 && matched > 150, "valid {valid}, matched {matched}");
}

#[test]
fn property_token_patterns_agree_with_reference() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let pattern_tokens = ["a", "b", "*", ">", "{x}", "{y}", "{x}"];
    let subject_tokens = ["a", "b", "c"];
    let mut matched = 0;
    for _ in 0..20_000 {
        let p = random_tokens(&mut rng, &pattern_tokens, 5);
        let s = random_tokens(&mut rng, &subject_tokens, 6);
        let expected = ref_matches(&p, &s);
        assert_eq!(matches(&p, &s), expected, "matches({p:?}, {s:?})");
        let parsed = Subject::parse(&p, Usage::Template).is_ok_and(|x| x.is_match(&s));
        assert_eq!(parsed, expected, "is_match({p:?}, {s:?})");
        matched += usize::from(expected);
    }
    assert!(matched > 1_000, "matched {matched}");
}

#[test]
fn fixed_edge_inputs_never_panic() {
    for input in [
        "",
        ".",
        "..",
        "...",
        "{",
        "}",
        "{}",
        "}{",
        "{{",
        "}}",
        "{.}",
        "ö.ü",
        "ö",
        ".ö.",
        "*",
        ">",
        ">.>",
        "*.*",
        "{ö}",
        "\u{0}",
        "\u{10ffff}",
        "a.\u{10ffff}.b",
        "{a}.{a}",
        "{a}.>",
        " . ",
        "\u{feff}",
        "a\u{200b}b",
    ] {
        check_invariants(input);
        for s in ["a", "ö.ü", "", "{", "a.b.c"] {
            let _ = matches(input, s);
            let _ = matches(s, input);
        }
    }
}

/// All concrete subjects over {a, b, c} with 1..=5 tokens.
fn all_subjects() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut layer: Vec<String> = vec![String::new()];
    for _ in 0..5 {
        let mut next = Vec::new();
        for prefix in &layer {
            for t in ["a", "b", "c"] {
                next.push(if prefix.is_empty() { t.to_owned() } else { format!("{prefix}.{t}") });
            }
        }
        out.extend(next.iter().cloned());
        layer = next;
    }
    out
}

/// All valid templates over {a, b, *, >, {x}, {y}} with 1..=4 tokens.
fn all_patterns() -> Vec<String> {
    let toks = ["a", "b", "*", ">", "{x}", "{y}"];
    let mut out = Vec::new();
    let mut layer: Vec<String> = vec![String::new()];
    for _ in 0..4 {
        let mut next = Vec::new();
        for prefix in &layer {
            for t in toks {
                next.push(if prefix.is_empty() { t.to_owned() } else { format!("{prefix}.{t}") });
            }
        }
        out.extend(next.iter().cloned());
        layer = next;
    }
    out.retain(|p| Subject::parse(p, Usage::Template).is_ok());
    out
}

#[test]
fn property_covers_is_exact_on_small_universe() {
    // `c` never appears in patterns, so it stands for "any other literal":
    // on this universe, covers must be equivalent to inclusion of match sets.
    let subjects = all_subjects();
    let patterns = all_patterns();
    assert!(patterns.len() > 500, "{}", patterns.len());
    let parsed: Vec<Subject<'_>> =
        patterns.iter().map(|p| Subject::parse(p, Usage::Template).unwrap()).collect();
    let sets: Vec<Vec<u64>> = parsed
        .iter()
        .map(|p| {
            let mut bits = vec![0u64; subjects.len().div_ceil(64)];
            for (i, s) in subjects.iter().enumerate() {
                let m = p.is_match(s);
                assert_eq!(m, ref_matches(p.as_str(), s));
                if m {
                    bits[i / 64] |= 1 << (i % 64);
                }
            }
            bits
        })
        .collect();
    for (a, sa) in parsed.iter().zip(&sets) {
        for (b, sb) in parsed.iter().zip(&sets) {
            let included = sa.iter().zip(sb).all(|(x, y)| y & !x == 0);
            assert_eq!(a.covers(b), included, "{a} covers {b}");
        }
    }
}

#[test]
fn property_random_covers_implies_inclusion() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let toks = ["a", "b", "*", ">", "{x}", "{y}", "c"];
    let subjects = all_subjects();
    let mut checked = 0;
    for _ in 0..3_000 {
        let a = random_tokens(&mut rng, &toks, 5);
        let b = random_tokens(&mut rng, &toks, 5);
        let (Ok(pa), Ok(pb)) = (Subject::parse(&a, Usage::Template), Subject::parse(&b, Usage::Template))
        else {
            continue;
        };
        if pa.covers(&pb) {
            checked += 1;
            for s in &subjects {
                if pb.is_match(s) {
                    assert!(pa.is_match(s), "{a} covers {b} but not {s}");
                }
            }
        }
    }
    assert!(checked > 50, "{checked}");
}

#[test]
fn the_plain_check_agrees_with_its_definition_on_every_short_input() {
    let plain = |s: &str| {
        s.split('.')
            .all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    };
    let alphabet = ["a", "Z", "9", "_", "-", ".", "*", ">", " ", "{", "ü", "\0"];
    let mut inputs = vec![String::new()];
    for _ in 0..4 {
        let longer: Vec<String> =
            inputs.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
        inputs.extend(longer);
    }
    inputs.sort();
    inputs.dedup();
    assert!(inputs.len() > 20_000);
    for input in &inputs {
        assert_eq!(subject::is_plain(input), plain(input), "{input:?}");
    }
}

#[test]
fn plain_subjects_take_the_short_path_and_agree_with_the_walk() {
    for input in ["orders", "orders.eu-1.created_v2", "A.b.C.9", "-._", "a.b.c.d.e.f.g.h"] {
        assert!(subject::is_plain(input), "{input:?}");
        for usage in [Usage::Publish, Usage::Subscribe, Usage::Template, Usage::PublishTemplate] {
            assert!(Subject::parse(input, usage).is_ok(), "{input:?} parses for {usage:?}");
        }
    }
    // Everything else is judged by the walk, errors included.
    for input in ["", ".", "a.", ".a", "a..b", "a.*", "a.>", "{a}.b", "a b", "$JS.API", "ü.x", "a\tb"] {
        assert!(!subject::is_plain(input), "{input:?}");
        for usage in [Usage::Publish, Usage::Subscribe, Usage::Template, Usage::PublishTemplate] {
            assert_eq!(
                validate(input, usage),
                Subject::parse(input, usage).map(|_| ()),
                "{input:?} {usage:?}"
            );
        }
    }
}
