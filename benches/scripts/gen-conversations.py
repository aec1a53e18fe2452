#!/usr/bin/env python3
"""Make or change a conversations database like an AI companion's memory.

gen-conversations.py create DB MB     a WAL-mode database of about MB megabytes
gen-conversations.py session DB       one work session: 500 new messages, 20 edits
"""
import random
import sqlite3
import sys

WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or one had by "
         "word but not what all were we when your can said there use an each which she do how their if will up other "
         "about out many then them these so some her would make like him into time has look two more write go see "
         "number no way could people my than first water been call who oil its now find long down day did get come "
         "made may part memory beach tide sky colour remember session lyra garden letter morning quiet light").split()


def sentence(rng):
    n = rng.randint(8, 40)
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def create(path, megabytes):
    rng = random.Random(1)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE conversations (id INTEGER PRIMARY KEY, title TEXT, started TEXT)")
    db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation INTEGER, role TEXT, body TEXT, at TEXT)")
    db.execute("CREATE INDEX messages_by_conversation ON messages(conversation)")
    target = megabytes * 1024 * 1024
    conv = 0
    while True:
        conv += 1
        db.execute("INSERT INTO conversations VALUES (?, ?, ?)", (conv, sentence(rng)[:60], f"2026-01-{conv % 28 + 1:02d}"))
        rows = [(conv, rng.choice(["user", "assistant"]), " ".join(sentence(rng) for _ in range(rng.randint(1, 6))),
                 f"2026-01-{conv % 28 + 1:02d}T12:00:00") for _ in range(50)]
        db.executemany("INSERT INTO messages (conversation, role, body, at) VALUES (?, ?, ?, ?)", rows)
        db.commit()
        if conv % 20 == 0:
            size = db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
            if size >= target:
                break
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def session(path, checkpoint):
    rng = random.Random()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_autocheckpoint=0")
    conv = db.execute("SELECT max(id) FROM conversations").fetchone()[0] + 1
    db.execute("INSERT INTO conversations VALUES (?, ?, ?)", (conv, "session", "2026-02-01"))
    for _ in range(500):
        db.execute("INSERT INTO messages (conversation, role, body, at) VALUES (?, ?, ?, ?)",
                   (conv, rng.choice(["user", "assistant"]), " ".join(sentence(rng) for _ in range(3)), "2026-02-01T10:00:00"))
    top = db.execute("SELECT max(id) FROM messages").fetchone()[0]
    for _ in range(20):
        db.execute("UPDATE messages SET body = ? WHERE id = ?", (sentence(rng), rng.randint(1, top)))
    db.commit()
    if checkpoint:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    else:
        # Keep the changes in the -wal file: leave the connection open in a child that sleeps.
        return db
    return None


if __name__ == "__main__":
    if sys.argv[1] == "create":
        create(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "session":
        session(sys.argv[2], checkpoint=True)
    elif sys.argv[1] == "session-wal":
        import time
        db = session(sys.argv[2], checkpoint=False)
        print("ready", flush=True)
        time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 30)
