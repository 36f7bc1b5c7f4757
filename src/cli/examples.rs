//! The EXAMPLES section of each command's `--help`, kept apart from the flags' descriptions so
//! that their line breaks survive (clap reflows doc comments). One story runs through them: the
//! customer `acme-foods`, its deal `d1` through the six steps, and a second deal `d2` that is
//! lost and comes back.

pub const INIT: &str = "Examples:
  pipeline-ledger --store ledger.db init";

pub const LEAD_SOURCED: &str = "Examples:
  pipeline-ledger record lead-sourced --customer acme-foods --rep rep-01 --deal d1 \\
    --source referral --company \"Acme Foods\" --contact-name \"Li Wei\" --occurred-at 2026-03-02";

pub const FIRST_VISIT: &str = "Examples:
  pipeline-ledger record first-visit --customer acme-foods --rep rep-01 --deal d1 \\
    --purpose \"find their needs\" --plan \"tour the plant\" --expected \"a demo booked\" \\
    --outcome \"demo booked\" --need \"faster packing\" --intent 4 --occurred-at 2026-03-09";

pub const DEMO_HELD: &str = "Examples:
  pipeline-ledger record demo --customer acme-foods --rep rep-01 --deal d1 \\
    --purpose \"show the packing line\" --plan \"live run\" --expected \"a quote requested\" \\
    --outcome \"quote requested\" --product packer-x2 --occurred-at 2026-03-20";

pub const NEGOTIATION: &str = "Examples:
  pipeline-ledger record negotiation --customer acme-foods --rep rep-01 --deal d1 \\
    --purpose \"agree the price\" --plan \"offer a longer term\" --expected \"a signed offer\" \\
    --outcome \"offer accepted\" --objection \"price too high:leave_room:resolved\" \\
    --concession \"500.00 EUR\" --occurred-at 2026-04-02";

pub const CONTRACT: &str = "Examples:
  pipeline-ledger record contract --customer acme-foods --rep rep-01 --deal d1 \\
    --value \"12500.00 EUR\" --term-months 12 --contract-ref C-2026-0042 --occurred-at 2026-04-10";

pub const FOLLOW_UP: &str = "Examples:
  pipeline-ledger record follow-up --customer acme-foods --rep rep-01 --deal d1 \\
    --kind care_call --outcome \"running well\" --next-due 2026-07-01 --occurred-at 2026-05-10";

pub const LOST: &str = "Examples:
  pipeline-ledger record lost --customer acme-foods --rep rep-01 --deal d2 --reason price \\
    --stage demo --details \"chose a cheaper line\"";

pub const REOPENED: &str = "Examples:
  pipeline-ledger record reopened --customer acme-foods --rep rep-01 --deal d2 \\
    --reason \"budget freed in Q3\"";

pub const REASSIGN: &str = "Examples:
  pipeline-ledger record reassign --customer acme-foods --rep rep-09 --from rep-01 --to rep-02 \\
    --reason \"territory change\"";

pub const CORRECT: &str = "Examples:
  pipeline-ledger history acme-foods          # find the event's id
  pipeline-ledger record correct --customer acme-foods --rep rep-01 \\
    --event 0197dfdd-0000-7000-8000-000000000000 --retract --reason \"logged twice\"
  pipeline-ledger record correct --customer acme-foods --rep rep-01 \\
    --event 0197dfdd-0000-7000-8000-000000000000 --reason \"wrong term\" \\
    --amend '{\"type\": \"ContractSigned\", \"data\": {…the corrected data…}}'";

pub const IMPORT: &str = "Examples:
  pipeline-ledger import events.ndjson
  some-crm-export | pipeline-ledger import -
  pipeline-ledger import q1.ndjson --manifest q1.manifest.json --public-key auditor.key.pub";

pub const EXPORT: &str = "Examples:
  pipeline-ledger export -o all.ndjson
  pipeline-ledger export --from 1001 --to 2000 -o q1.ndjson --manifest q1.manifest.json \\
    --key auditor.key";

pub const BACKUP: &str = "Examples:
  pipeline-ledger backup ledger-2026-03-01.db
  pipeline-ledger backup ledger-latest.db
  pipeline-ledger backup ledger-latest.db --force        # replaces the older backup";

pub const HISTORY: &str = "Examples:
  pipeline-ledger history acme-foods
  pipeline-ledger history acme-foods --json
  pipeline-ledger history acme-foods --as-of 2026-03 --csv
  pipeline-ledger history acme-foods --type ContractSigned --type EventCorrected --rep rep-01
  pipeline-ledger history acme-foods --json --redacted   # personal fields withheld";

pub const FORGET: &str = "Examples:
  pipeline-ledger forget acme-foods --reason \"GDPR art. 17 request 2026-114\" --by dpo-office
  pipeline-ledger history acme-foods --json   # the contact now reads {\"withheld\": \"erased\"}";

pub const MIGRATE_PERSONAL_DATA: &str = "Examples:
  pipeline-ledger migrate-personal-data --to ledger-sealed.db --key auditor.key
  pipeline-ledger --store ledger-sealed.db verify --seal ledger-sealed.to.seal";

pub const PROJECT: &str = "Examples:
  pipeline-ledger project
  pipeline-ledger project --follow        # keeps the read models live until Ctrl-C";

pub const REBUILD: &str = "Examples:
  pipeline-ledger rebuild";

pub const FUNNEL: &str = "Examples:
  pipeline-ledger funnel
  pipeline-ledger funnel --by source --from 2026-Q1 --to 2026-Q1
  pipeline-ledger funnel --as-of 2026-03-31 --json";

pub const REPS: &str = "Examples:
  pipeline-ledger reps
  pipeline-ledger reps --period month --rep rep-01 --csv";

pub const SCORECARD: &str = "Examples:
  pipeline-ledger scorecard
  pipeline-ledger scorecard --quarter 2026-Q2 --rep rep-01 --json";

pub const RETENTION: &str = "Examples:
  pipeline-ledger retention
  pipeline-ledger retention --period month --csv";

pub const RANKING: &str = "Examples:
  pipeline-ledger ranking
  pipeline-ledger ranking --period year --limit 5
  pipeline-ledger ranking --in 2025-Q3 --csv";

pub const QUALIFICATION: &str = "Examples:
  pipeline-ledger qualification
  pipeline-ledger qualification --as-of 2026-Q1 --json";

pub const CUSTOMER: &str = "Examples:
  pipeline-ledger customer acme-foods
  pipeline-ledger customer acme-foods --as-of 2026-Q1 --json";

pub const PIPELINE: &str = "Examples:
  pipeline-ledger pipeline
  pipeline-ledger pipeline --known-at 2026-06-30 --json";

pub const SERVE: &str = "Examples:
  pipeline-ledger token create --role reader --name dashboard
  pipeline-ledger --store ledger.db serve --listen 127.0.0.1:8080";

pub const OPENAPI: &str = "Examples:
  pipeline-ledger openapi > openapi.json";

pub const TOKEN_CREATE: &str = "Examples:
  pipeline-ledger token create --role reader --name bi-nightly --expires 2027-06-30";

pub const TOKEN_LIST: &str = "Examples:
  pipeline-ledger token list";

pub const TOKEN_REVOKE: &str = "Examples:
  pipeline-ledger token revoke bi-nightly --reason \"job retired\"";

pub const KEYGEN: &str = "Examples:
  pipeline-ledger keygen --out auditor.key";

pub const SEAL: &str = "Examples:
  pipeline-ledger --store ledger.db seal --key auditor.key --output 2026-12-01.seal";

pub const VERIFY: &str = "Examples:
  pipeline-ledger --store ledger.db verify
  pipeline-ledger --store ledger.db verify --seal 2026-12-01.seal --public-key auditor.key.pub
  pipeline-ledger verify --export q1.ndjson --manifest q1.manifest.json";

pub const BENCH: &str = "Examples:
  pipeline-ledger bench --sizes 100000        # a quick run
  pipeline-ledger bench                       # 1M and 10M events";

pub const DEMO: &str = "Examples:
  pipeline-ledger demo
  pipeline-ledger demo --customers 2000 --seed 7";
