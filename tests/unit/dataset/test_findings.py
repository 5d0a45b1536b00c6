"""A file shaped like real chat data, with one of each problem planted: the report finds exactly those."""

from __future__ import annotations

import json

from tests.unit.dataset.conftest import chat_record
from tools.dataset.checks import check_file

PLANTED = {
    # line: (what is in the answer, the finding it must give)
    12: ("Use the live key sk_live_4eC39HqLyjWDarjtT1zdp7dc for the payment call.", ("secret", "error")),
    25: ("Send the summary to maria.lopez@acme-robotics.de by Friday.", ("pii_email", "warning")),
    33: ("Call the hotline on 09061701461 if the export fails.", ("pii_phone", "warning")),
    41: ("Charge the card 4539 1488 0343 6467 once the trial ends.", ("pii_id", "warning")),
    47: ("Hi {{customer_name}}, your workspace is ready.", ("template_placeholder", "warning")),
    58: ("In the test config, password = hunter2hunter for the demo user.", ("secret", "warning")),
    66: ("The staging database is postgres://admin:s3cretPass@db.internal:5432/app today.", ("secret", "error")),
}
CLEAN_NOISE = [
    "用户故事：作为管理员，我希望批量导入用户，以便节省时间。验收标准：支持CSV文件，错误行会被标出。",
    "Internationalisation and responsibilities are unambiguously documented (ticket 12345).",
    "Columns\tare\tseparated\x1fby odd  whitespace\u00a0here, and the release is 2024-05-01.",
]


def test_a_realistic_file_gets_exactly_the_planted_findings(write):
    rows = [chat_record(i) for i in range(120)]
    for line, (answer, _) in PLANTED.items():
        rows[line - 1]["messages"][1]["content"] += " " + answer
    for k, text in enumerate(CLEAN_NOISE):
        rows[80 + k]["messages"][1]["content"] += " " + text
    rows[99] = rows[9]  # an exact copy of line 10
    near = json.loads(json.dumps(rows[19]))
    near["messages"][1]["content"] = near["messages"][1]["content"].replace("smoother", "easier")
    rows[109] = near  # line 110: line 20 with one word changed
    path = write("chats.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    report = check_file(path)

    found = {(i.line, i.code, i.severity) for i in report.issues}
    expected = {(line, code, severity) for line, (_, (code, severity)) in PLANTED.items()}
    expected |= {(100, "duplicate", "warning"), (110, "near_duplicate", "warning")}
    assert found == expected, sorted(found ^ expected, key=str)
    assert report.examples == 120
    assert not report.ok
