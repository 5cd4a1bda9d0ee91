//! The built-in recognizers: one regex per recognizer, in priority order, and the rule that
//! turns a match into a finding (checksum, range and context checks, score).
//!
//! All patterns go into one `regex-automata` meta regex, so the text is scanned once; the
//! patterns avoid Unicode word boundaries (ASCII `\b` only) so the lazy DFA never falls back.

/// Which rule classifies a recognizer's matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    Email,
    Url,
    Iban,
    BtcBech32,
    BtcLegacy,
    Nino,
    Ecli,
    Mac,
    Ipv4,
    Ipv6,
    Card,
    SsnDashed,
    NineDigits,
    DateNumeric,
    DateIso,
    DateWords,
    PhoneIntl,
    PhoneUs,
    PhoneNational,
    PersonTitle,
    PersonRole,
    OrgSuffix,
    /// A user-supplied name list (PERSON).
    NameList,
    /// A deny-list or custom pattern from the configuration: fixed entity and score.
    Fixed,
}

/// Context word groups, as bits.
pub(crate) mod ctx {
    pub(crate) const PHONE: u16 = 1;
    pub(crate) const SSN: u16 = 1 << 1;
    pub(crate) const CARD: u16 = 1 << 2;
    pub(crate) const IBAN: u16 = 1 << 3;
    pub(crate) const BIRTH: u16 = 1 << 4;
    pub(crate) const BSN: u16 = 1 << 5;
    pub(crate) const RSIN: u16 = 1 << 6;
    pub(crate) const NINO: u16 = 1 << 7;
    pub(crate) const IP: u16 = 1 << 8;
    pub(crate) const CRYPTO: u16 = 1 << 9;
    pub(crate) const EMAIL: u16 = 1 << 10;
}

/// Context words (matched ASCII-case-insensitively) and the groups they support.
pub(crate) const CONTEXT_WORDS: &[(&str, u16)] = &[
    ("phone", ctx::PHONE),
    ("tel", ctx::PHONE),
    ("mobile", ctx::PHONE),
    ("cell", ctx::PHONE),
    ("call", ctx::PHONE),
    ("fax", ctx::PHONE),
    ("mob", ctx::PHONE),
    ("telefoon", ctx::PHONE),
    ("telefon", ctx::PHONE),
    ("téléphone", ctx::PHONE),
    ("handy", ctx::PHONE),
    ("gsm", ctx::PHONE),
    ("reach", ctx::PHONE),
    ("ssn", ctx::SSN),
    ("social security", ctx::SSN),
    ("ss#", ctx::SSN),
    ("card", ctx::CARD),
    ("credit", ctx::CARD),
    ("visa", ctx::CARD),
    ("mastercard", ctx::CARD),
    ("amex", ctx::CARD),
    ("iban", ctx::IBAN),
    ("account", ctx::IBAN),
    ("bank", ctx::IBAN),
    ("rekening", ctx::IBAN),
    ("konto", ctx::IBAN),
    ("born", ctx::BIRTH),
    ("birth", ctx::BIRTH),
    ("dob", ctx::BIRTH),
    ("d.o.b", ctx::BIRTH),
    ("geboren", ctx::BIRTH),
    ("geb.", ctx::BIRTH),
    ("geboortedatum", ctx::BIRTH),
    ("né le", ctx::BIRTH),
    ("née le", ctx::BIRTH),
    ("naissance", ctx::BIRTH),
    ("bsn", ctx::BSN),
    ("burgerservicenummer", ctx::BSN),
    ("sofinummer", ctx::BSN),
    ("citizen service", ctx::BSN),
    ("rsin", ctx::RSIN),
    ("fiscaal nummer", ctx::RSIN),
    ("nino", ctx::NINO),
    ("national insurance", ctx::NINO),
    ("ni number", ctx::NINO),
    ("ip", ctx::IP),
    ("host", ctx::IP),
    ("server", ctx::IP),
    ("bitcoin", ctx::CRYPTO),
    ("btc", ctx::CRYPTO),
    ("wallet", ctx::CRYPTO),
    ("email", ctx::EMAIL),
    ("e-mail", ctx::EMAIL),
    ("mail", ctx::EMAIL),
];

/// How much a supporting context word adds to a score (Presidio's default as well).
pub(crate) const CONTEXT_BOOST: f32 = 0.35;

/// Upper-case and lower-case letters (ASCII, Latin-1, Latin Extended-A), kept small so the
/// DFA stays small.
const UP: &str = "[A-ZÀ-ÖØ-ÞĀ-ž]";
const LO: &str = "[a-zß-öø-ÿĀ-ž]";

fn name_word() -> String {
    format!("(?:{UP}(?:['’]{UP})?{LO}[a-zß-öø-ÿĀ-žA-ZÀ-ÖØ-Þ'’\\-]*|{UP}\\.)")
}

fn name() -> String {
    let w = name_word();
    format!(
        "{w}(?:[ \\t]+(?:(?:van|de|der|den|von|la|le|di|da|du|ten|ter|dos|del|bin|al)[ \\t]+)*{w}){{0,3}}"
    )
}

/// Legal-entity suffixes.
pub(crate) const ORG_SUFFIX: &str = "(?:B\\.V\\.|N\\.V\\.|BV|NV|GmbH[ \\t]&[ \\t]Co\\.[ \\t]KG|GmbH|AG|KG|SE|Incorporated|Inc\\.?|LLP|LLC|L\\.L\\.C\\.|Limited|Ltd\\.?|plc|PLC|S\\.A\\.|SARL|SAS|SA|S\\.à[ \\t]r\\.l\\.|Corporation|Corp\\.?|Company|Co\\.|Group|Holdings|Holding)";

const MONTHS: &str = "(?:jan(?:uary|uari|uar|vier)?|feb(?:ruary|ruari|ruar)?|février|mar(?:ch|s)?|maart|märz|apr(?:il)?|avril|may|mai|mei|jun(?:e|i)?|juin|jul(?:y|i)?|juillet|aug(?:ust|ustus)?|août|sep(?:t|tember|tembre)?|oct(?:ober|obre)?|okt(?:ober)?|nov(?:ember|embre)?|dec(?:ember)?|dez(?:ember)?|décembre)";

/// A built-in recognizer: name, rule, entity it reports (for fixed rules), regex.
pub(crate) struct Builtin {
    pub(crate) name: &'static str,
    pub(crate) rule: Rule,
    pub(crate) pattern: String,
}

/// The built-in recognizers in priority order (earlier wins at the same start).
pub(crate) fn builtins() -> Vec<Builtin> {
    let b = "(?-u:\\b)";
    let name = name();
    let w = name_word();
    let up = UP;
    let mut v = Vec::new();
    let mut add = |name: &'static str, rule: Rule, pattern: String| {
        v.push(Builtin {
            name,
            rule,
            pattern,
        })
    };
    add(
        "ecli",
        Rule::Ecli,
        format!("{b}ECLI:[A-Z]{{2}}:[A-Z0-9]{{1,7}}:[0-9]{{4}}:[A-Z0-9.]{{1,25}}"),
    );
    add(
        "email",
        Rule::Email,
        "[A-Za-z0-9._%+\\-]{1,64}@[A-Za-z0-9\\-]{1,63}(?:\\.[A-Za-z0-9\\-]{1,63}){0,6}\\.[A-Za-z]{2,24}(?-u:\\b)".into(),
    );
    add(
        "url",
        Rule::Url,
        "(?i:https?://|www\\.)[^\\s<>\"'`\\[\\]{}|\\\\^]+".into(),
    );
    add(
        "iban",
        Rule::Iban,
        format!("{b}[A-Z]{{2}}[0-9]{{2}}(?:[ ]?[A-Z0-9]{{4}}){{2,7}}(?:[ ]?[A-Z0-9]{{1,3}})?{b}"),
    );
    add(
        "btc_bech32",
        Rule::BtcBech32,
        format!("{b}(?:bc1|BC1)[02-9ac-hj-np-zAC-HJ-NP-Z]{{6,87}}{b}"),
    );
    add(
        "btc_base58",
        Rule::BtcLegacy,
        format!("{b}[13][1-9A-HJ-NP-Za-km-z]{{25,34}}{b}"),
    );
    add(
        "uk_nino",
        Rule::Nino,
        format!(
            "{b}[A-CEGHJ-NPR-TW-Z][A-CEGHJ-NPRSTW-Z][ ]?[0-9]{{2}}[ ]?[0-9]{{2}}[ ]?[0-9]{{2}}[ ]?[A-D]{b}"
        ),
    );
    add(
        "mac",
        Rule::Mac,
        format!(
            "{b}(?:[0-9A-Fa-f]{{2}}(?::[0-9A-Fa-f]{{2}}){{5}}|[0-9A-Fa-f]{{2}}(?:-[0-9A-Fa-f]{{2}}){{5}}|[0-9A-Fa-f]{{4}}\\.[0-9A-Fa-f]{{4}}\\.[0-9A-Fa-f]{{4}}){b}"
        ),
    );
    add(
        "ipv4",
        Rule::Ipv4,
        format!("{b}(?:[0-9]{{1,3}}\\.){{3}}[0-9]{{1,3}}{b}"),
    );
    add(
        "ipv6",
        Rule::Ipv6,
        "(?:(?-u:\\b)[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}|::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4})(?-u:\\b)(?:/[0-9]{1,3})?".into(),
    );
    add(
        "credit_card",
        Rule::Card,
        format!("{b}[0-9](?:[ \\-]?[0-9]){{11,18}}{b}"),
    );
    add(
        "us_ssn",
        Rule::SsnDashed,
        format!("{b}[0-9]{{3}}(?:-[0-9]{{2}}-|[ ][0-9]{{2}}[ ])[0-9]{{4}}{b}"),
    );
    add(
        "nine_digits",
        Rule::NineDigits,
        format!("{b}(?:[0-9]{{9}}|[0-9]{{4}}\\.[0-9]{{2}}\\.[0-9]{{3}}){b}"),
    );
    add(
        "date",
        Rule::DateNumeric,
        format!("{b}[0-9]{{1,2}}[./\\-][0-9]{{1,2}}[./\\-](?:19|20)[0-9]{{2}}{b}"),
    );
    add(
        "date_iso",
        Rule::DateIso,
        format!("{b}(?:19|20)[0-9]{{2}}-[0-9]{{2}}-[0-9]{{2}}{b}"),
    );
    add(
        "date_words",
        Rule::DateWords,
        format!(
            "(?i:{b}(?:[0-9]{{1,2}}(?:st|nd|rd|th|er)?\\.?[ ]+{MONTHS}\\.?,?[ ]+|{MONTHS}\\.?[ ]+[0-9]{{1,2}}(?:st|nd|rd|th)?,?[ ]+)(?:19|20)[0-9]{{2}}{b})"
        ),
    );
    add(
        "phone_intl",
        Rule::PhoneIntl,
        "(?:\\+|(?-u:\\b)00)[1-9][0-9]{0,2}(?:[ .\\-]?\\(?[0-9]{1,5}\\)?){2,6}(?-u:\\b)".into(),
    );
    add(
        "phone_us",
        Rule::PhoneUs,
        format!(
            "(?:{b}1[ .\\-]?)?(?:\\([2-9][0-9]{{2}}\\)[ ]?|{b}[2-9][0-9]{{2}}[ .\\-])[2-9][0-9]{{2}}[ .\\-][0-9]{{4}}{b}"
        ),
    );
    add(
        "phone_national",
        Rule::PhoneNational,
        format!(
            "(?:{b}0[1-9][0-9]{{0,4}}|\\(0[1-9][0-9]{{0,4}}\\))(?:[ ./\\-]?[0-9]{{2,5}}){{1,4}}{b}"
        ),
    );
    add(
        "person_title",
        Rule::PersonTitle,
        format!(
            "{b}(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Lord|Lady|Judge|Justice|Hon|Mevrouw|Mevr|Dhr|Heer|Herr|Frau|Mme|Mlle|Maître|Me)\\.?[ \\t]+({name})"
        ),
    );
    add(
        "person_role",
        Rule::PersonRole,
        format!(
            "(?i:{b}(?:plaintiffs?|defendants?|claimants?|respondents?|appellants?|petitioners?|applicants?|(?:the|our|my|your) client|witness|counsel for|represented by|on behalf of|attorney for|solicitor for|employee|tenant|landlord|eiser(?:es)?|gedaagde|verzoeker|Kläger(?:in)?|Beklagte[rn]?|demandeur|défendeur))[,:]?[ \\t]+({name}[ \\t]+{ORG_SUFFIX}|{name})"
        ),
    );
    add(
        "organization_suffix",
        Rule::OrgSuffix,
        format!(
            "{up}[A-Za-zÀ-ÖØ-öø-ÿĀ-ž&'’\\-]*(?:[ \\t]+(?:{w}|&|and|en|und|et|of)){{0,4}}[ \\t]+{ORG_SUFFIX}"
        ),
    );
    v
}
