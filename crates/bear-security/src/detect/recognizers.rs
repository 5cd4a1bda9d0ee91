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
    /// Words that say a number is not PII: a version, an order or invoice number.
    pub(crate) const NOT_PII: u16 = 1 << 11;
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
    ("teléfono", ctx::PHONE),
    ("telefono", ctx::PHONE),
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
    ("version", ctx::NOT_PII),
    ("ver.", ctx::NOT_PII),
    ("release", ctx::NOT_PII),
    ("build", ctx::NOT_PII),
    ("firmware", ctx::NOT_PII),
    ("order", ctx::NOT_PII),
    ("invoice", ctx::NOT_PII),
    ("ticket", ctx::NOT_PII),
    ("tracking", ctx::NOT_PII),
    ("serial", ctx::NOT_PII),
    ("part no", ctx::NOT_PII),
    ("model", ctx::NOT_PII),
    ("bestelnummer", ctx::NOT_PII),
    ("factuur", ctx::NOT_PII),
    ("rechnung", ctx::NOT_PII),
    ("bestellnummer", ctx::NOT_PII),
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

/// An RFC 5322 atom of an e-mail address's local part, as addresses are written in practice
/// (the `atext` characters but `/`, `=`, `?` and the braces, which in practice belong to the
/// text around an address).
const ATOM: &str = "[A-Za-z0-9!#$%&'*+^_`|~\\-]+";

/// One label of a host name, IDN (Unicode letters) included.
const HOST_LABEL: &str = "[\\p{L}\\p{N}](?:[\\p{L}\\p{N}\\-]*[\\p{L}\\p{N}])?";

/// A host name with a top-level domain of letters (an IDN one too) or punycode.
const HOST: &str =
    "(?:[\\p{L}\\p{N}](?:[\\p{L}\\p{N}\\-]*[\\p{L}\\p{N}])?\\.)+(?:\\p{L}{2,24}|xn--[a-z0-9\\-]+)";

/// Top-level domains a host without a scheme must end in to be taken as a URL: the generic
/// ones a firm meets and every country code but those that are also common file extensions
/// (`.py`, `.rs`, `.md`, `.sh`, `.cc`, `.so`, `.ps`, `.pm`, `.am`, `.as`, `.ml`, `.mk`,
/// `.mo`, `.sv`, `.tf`). Written in lower case (or all upper case) only, so a missing space
/// after a full stop ("end.It") is not a host. Checked after the match (a list in the pattern
/// would multiply the scan's automaton).
pub(crate) const TLDS: &str = "com org net edu gov mil int info biz name pro mobi asia cat coop aero jobs travel tel io ai app dev tech online site store shop blog cloud law legal lawyer attorney bank finance financial news email link live xyz club academy agency associates auction business capital center city claims clinic company consulting contact credit design digital direct directory education energy engineering enterprises estate events exchange expert express family foundation fund global gmbh group guide health healthcare help holdings host hosting house institute insure international investments land lease limited loan loans ltd management market marketing media money mortgage network ngo page partners press properties property report school services social software solutions space studio support systems tax team technology today tools top trade training university ventures website wiki works world zone berlin london paris amsterdam brussels nyc wien bayern hamburg koeln frl eus gal scot wales vlaanderen swiss ac ad ae af ag al ao aq ar at au aw ax az ba bb bd be bf bg bh bi bj bm bn bo br bs bt bw by bz ca cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee eg er es et eu fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn hr ht hu id ie il im in iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc me mg mh mm mn mp mq mr mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pn pr pt pw qa re ro ru rw sa sb sc sd se sg si sj sk sl sm sn sr st su sx sy sz tc td tg th tj tk tl tm tn to tr tt tv tw tz ua ug uk us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw";

/// A dotted-decimal IPv4 address's shape (the values are checked after).
const IPV4: &str = "(?:[0-9]{1,3}\\.){3}[0-9]{1,3}";

/// An IPv6 address's shape (RFC 4291 §2.2: full, `::`-compressed, with an embedded IPv4
/// address); the parser decides.
const IPV6: &str = "(?:[0-9A-Fa-f]{0,4}:){2,8}(?:(?:[0-9]{1,3}\\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?";

/// A telephone extension.
const EXT: &str = "(?:(?i:[ ]?(?:ext\\.?|x|extension|toestel|durchwahl)[ ]?)[0-9]{1,6}(?-u:\\b))?";

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
        format!("{ATOM}(?:\\.{ATOM})*@(?:{HOST}|\\[{IPV4}\\])"),
    );
    add(
        "url",
        Rule::Url,
        format!(
            "(?-u:\\b)(?i:(?:https?|ftps?|sftp)://|www\\.)[^\\s<>\"'`{{}}|\\\\^]+|{HOST_LABEL}(?:\\.{HOST_LABEL})*\\.(?:[a-z]{{2,24}}|[A-Z]{{2,24}})(?-u:\\b)(?::[0-9]{{1,5}})?(?:[/?#][^\\s<>\"'`{{}}|\\\\^]*)?"
        ),
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
        format!("{b}{IPV4}{b}(?:/[0-9]{{1,2}}{b})?"),
    );
    add(
        "ipv6",
        Rule::Ipv6,
        format!(
            "\\[{IPV6}(?:%[0-9A-Za-z._~\\-]{{1,32}})?\\](?::[0-9]{{1,5}})?|{IPV6}(?:%[0-9A-Za-z._~\\-]{{1,32}})?(?:/[0-9]{{1,3}})?"
        ),
    );
    add(
        "credit_card",
        Rule::Card,
        format!(
            "{b}(?:[0-9]{{12,19}}|[0-9]{{4}}(?:[ ][0-9]{{4}}){{2,3}}(?:[ ][0-9]{{1,4}})?|[0-9]{{4}}(?:-[0-9]{{4}}){{2,3}}(?:-[0-9]{{1,4}})?|[0-9]{{4}}[ ][0-9]{{6}}[ ][0-9]{{4,5}}|[0-9]{{4}}-[0-9]{{6}}-[0-9]{{4,5}}){b}"
        ),
    );
    add(
        "us_ssn",
        Rule::SsnDashed,
        format!("{b}[0-9]{{3}}(?:-[0-9]{{2}}-|[ ][0-9]{{2}}[ ]|\\.[0-9]{{2}}\\.)[0-9]{{4}}{b}"),
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
        format!(
            "(?:\\+|(?-u:\\b)00)[1-9][0-9]{{0,2}}(?:[ .\\-]?\\(?[0-9]{{1,5}}\\)?){{2,6}}(?-u:\\b){EXT}"
        ),
    );
    add(
        "phone_us",
        Rule::PhoneUs,
        format!(
            "(?:{b}1[ .\\-]?)?(?:\\([2-9][0-9]{{2}}\\)[ ]?|{b}[2-9][0-9]{{2}}[ .\\-])[2-9][0-9]{{2}}[ .\\-][0-9]{{4}}{b}{EXT}|{b}[2-9][0-9]{{2}}[2-9][0-9]{{6}}{b}"
        ),
    );
    add(
        "phone_national",
        Rule::PhoneNational,
        format!(
            "(?:{b}0[1-9][0-9]{{0,4}}|\\(0[1-9][0-9]{{0,4}}\\))(?:[ ./\\-]?[0-9]{{2,5}}){{1,4}}{b}{EXT}|{b}[6-9][0-9]{{2}}(?:[ ][0-9]{{3}}[ ][0-9]{{3}}|[ ][0-9]{{2}}[ ][0-9]{{2}}[ ][0-9]{{2}}){b}"
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
