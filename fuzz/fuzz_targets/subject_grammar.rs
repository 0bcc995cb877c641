//! The subject grammar on arbitrary strings: never panics, and the invariants the
//! macros (compile time) and the runtime (run time) rely on hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nats_otel_rules::{
    HeaderNameError, HeaderNameErrorKind, NameError, Subject, SubjectError, Token, Usage,
    capture_header_errors, matches, token_at, validate, validate_header_name, validate_name,
    validate_queue_group, validate_token_value,
};

const USAGES: [Usage; 4] = [Usage::Publish, Usage::Subscribe, Usage::Template, Usage::PublishTemplate];

// Input: up to three strings separated by 0xFF (never part of UTF-8), so seeds are
// readable files: `orders.{region}.created\xFForders.>\xFFeu`.
fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0xff).map(String::from_utf8_lossy);
    let (a, b, value) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (a, b, value) = (a.as_ref(), b.as_ref(), value.as_ref());
    for text in [a, b, value] {
        for usage in USAGES {
            check_parse(text, usage);
        }
        for check in [validate_name, validate_queue_group, validate_token_value] {
            if let Err(e) = check(text) {
                check_name_error(text, &e);
            }
        }
    }
    check_header_names(&[a, b, value]);
    check_matching(a, b);
    check_matching(b, a);
    check_covers(a, b);
    check_rendering(a, value);
});

/// `parse` and `validate` agree, errors point into the input, and a parsed
/// subject's segments are exactly its tokens.
fn check_parse(input: &str, usage: Usage) {
    let parsed = Subject::parse(input, usage);
    let validated = validate(input, usage);
    match (&parsed, &validated) {
        (Ok(_), Ok(())) => {}
        (Err(p), Err(v)) => {
            assert_eq!(p, v, "parse and validate report the same first error");
            check_subject_error(input, p);
        }
        _ => panic!("parse {parsed:?} and validate {validated:?} disagree on {input:?} for {usage:?}"),
    }
    let Ok(subject) = parsed else { return };
    assert_eq!(subject.as_str(), input);
    let mut rebuilt = String::new();
    for (i, segment) in subject.segments().iter().enumerate() {
        let range = segment.range.clone();
        assert!(input.is_char_boundary(range.start) && input.is_char_boundary(range.end));
        let text = &input[range];
        match segment.token {
            Token::Literal(l) => assert_eq!(l, text),
            Token::Any => assert_eq!(text, "*"),
            Token::Tail => {
                assert_eq!(text, ">");
                assert_eq!(i + 1, subject.segments().len(), "`>` is last");
            }
            Token::Capture(name) => assert_eq!(format!("{{{name}}}"), text),
        }
        if i > 0 {
            rebuilt.push('.');
        }
        rebuilt.push_str(text);
    }
    assert_eq!(rebuilt, input, "the segments are the whole input");
    let pattern = subject.pattern();
    assert!(validate(&pattern, Usage::Subscribe).is_ok(), "{pattern:?} is a valid subscription");
    assert!(subject.covers(&subject), "covers is reflexive");
    if usage == Usage::Publish {
        // A valid concrete subject matches itself, as a pattern and as data.
        assert!(!subject.has_wildcards());
        assert_eq!(pattern, input);
        assert!(subject.is_match(input), "{input:?} matches itself");
        assert!(matches(input, input), "{input:?} matches itself");
        for (i, segment) in subject.segments().iter().enumerate() {
            assert_eq!(token_at(input, i), Some(&input[segment.range.clone()]));
        }
        assert_eq!(token_at(input, subject.segments().len()), None);
    }
    let _ = subject.captures().count();
    let _ = subject.to_string();
}

fn check_subject_error(input: &str, e: &SubjectError) {
    let range = e.range.clone();
    assert!(range.start <= range.end && range.end <= input.len(), "{range:?} lies in {input:?}");
    assert!(input.is_char_boundary(range.start) && input.is_char_boundary(range.end));
    assert_eq!(e.snippet(), &input[range]);
    assert!(!e.message().is_empty() && !e.help().is_empty());
    let _ = e.to_string();
}

fn check_name_error(input: &str, e: &NameError) {
    let range = e.range.clone();
    assert!(range.start <= range.end && range.end <= input.len(), "{range:?} lies in {input:?}");
    assert!(input.is_char_boundary(range.start) && input.is_char_boundary(range.end));
    assert!(!e.message().is_empty() && !e.help().is_empty());
    let _ = e.to_string();
}

/// Header names (`capture_headers`): each list error points into the name it is
/// about, and a name alone is rejected exactly when it is rejected in a list for
/// a reason other than being listed twice.
fn check_header_names(names: &[&str]) {
    let errors: Vec<HeaderNameError> = capture_header_errors(names).collect();
    for error in &errors {
        let name = names[error.index];
        assert_eq!(error.name(), name);
        check_header_name_error(name, error);
    }
    for (index, name) in names.iter().enumerate() {
        let alone = validate_header_name(name);
        if let Err(e) = &alone {
            check_header_name_error(name, e);
        }
        let in_list = errors.iter().any(|e| e.index == index && e.kind != HeaderNameErrorKind::Duplicate);
        assert_eq!(alone.is_err(), in_list, "{name:?} alone and in {names:?}");
    }
}

fn check_header_name_error(input: &str, e: &HeaderNameError) {
    let range = e.range.clone();
    assert!(range.start <= range.end && range.end <= input.len(), "{range:?} lies in {input:?}");
    assert!(input.is_char_boundary(range.start) && input.is_char_boundary(range.end));
    assert!(!e.message().is_empty() && !e.help().is_empty());
    let _ = e.to_string();
}

/// `matches` is the allocation-free form of parse-then-`is_match`, as documented.
fn check_matching(pattern: &str, subject: &str) {
    let by_parse = Subject::parse(pattern, Usage::Template).is_ok_and(|p| p.is_match(subject));
    assert_eq!(matches(pattern, subject), by_parse, "matches({pattern:?}, {subject:?})");
    for i in 0..4 {
        if let Some(token) = token_at(subject, i) {
            assert!(!token.is_empty() && !token.contains('.'));
        }
    }
}

/// When `a` covers `b`, every subject `b` matches is matched by `a`; in particular
/// `b` with its wildcards filled in.
fn check_covers(a: &str, b: &str) {
    let (Ok(a), Ok(b)) = (Subject::parse(a, Usage::Template), Subject::parse(b, Usage::Template)) else {
        return;
    };
    let concrete: Vec<&str> = b
        .segments()
        .iter()
        .map(|s| match s.token {
            Token::Literal(l) => l,
            Token::Any | Token::Capture(_) | Token::Tail => "x",
        })
        .collect();
    let concrete = concrete.join(".");
    assert!(b.is_match(&concrete), "{b} matches {concrete:?}");
    if a.covers(&b) {
        assert!(a.is_match(&concrete), "{a} covers {b} but does not match {concrete:?}");
    }
}

/// A message subject rendered from token values that passed
/// `validate_token_value` is a concrete subject its template matches: what
/// `Publisher::publish_message` checks before sending. (Braces are data here, so
/// it need not pass the stricter check for subjects written in code: the first
/// version of this invariant asserted that, and the fuzzer refuted it at once;
/// the publisher refused such messages.)
fn check_rendering(template: &str, value: &str) {
    let Ok(parsed) = Subject::parse(template, Usage::PublishTemplate) else { return };
    if validate_token_value(value).is_err() {
        return;
    }
    let rendered: Vec<&str> = parsed
        .segments()
        .iter()
        .map(|s| match s.token {
            Token::Capture(_) => value,
            Token::Literal(l) => l,
            Token::Any | Token::Tail => unreachable!("no wildcards in a publish template"),
        })
        .collect();
    let rendered = rendered.join(".");
    assert!(matches(template, &rendered), "{template} does not match its rendering {rendered:?}");
    assert!(parsed.is_match(&rendered), "{template} does not match its rendering {rendered:?}");
    if !parsed.has_wildcards() {
        assert!(validate(&rendered, Usage::Publish).is_ok(), "{rendered:?}");
    }
}
