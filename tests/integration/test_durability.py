"""The spool: 250 only once durable; state survives kill -9 and restarts;
hold/release/delete and deferral reasons are durable; a write error is a
4xx, never a lost 250."""
import os
import re
import subprocess
import struct
import threading
import time
import zlib

import pytest

from conftest import (KICKQ, MTA_HOST, Raw, build_shim, code, customer_conf, message, queue,
                      queue_ids, queued_id, shim_env, status_of, wait_for)


def test_kill9_right_after_250(daemon):
    qid = daemon.send("bob@acme.example", body=message(subject="must survive"))
    before = queue(daemon)
    daemon.kill9()
    daemon.start()
    after = queue(daemon)
    assert [m["queue_id"] for m in after] == [qid]
    assert after == before
    shown = daemon.kickq("show", qid, "--body").stdout
    assert "Subject: must survive" in shown
    assert "hello" in shown


def test_kill9_after_many_concurrent_messages(daemon):
    """Messages from parallel sessions share syncs; every acknowledged one
    is there after kill -9."""
    ids, errors = [], []
    lock = threading.Lock()

    def worker(n):
        try:
            for i in range(5):
                q = daemon.send(["bob@acme.example", "bob@beta.example"],
                                body=message(subject="w%d-%d" % (n, i)))
                with lock:
                    ids.append(q)
        except Exception as e:      # noqa: BLE001
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(ids)) == 40
    daemon.kill9()
    daemon.start()
    assert sorted(queue_ids(daemon)) == sorted(ids)
    for m in queue(daemon):
        assert sorted(r["customer"] for r in m["recipients"]) == ["acme", "beta"]


def test_ids_stay_unique_across_restarts(daemon):
    a = daemon.send("bob@acme.example")
    daemon.kill9()
    daemon.start()
    b = daemon.send("bob@acme.example")
    daemon.stop()
    daemon.start()
    c = daemon.send("bob@acme.example")
    assert len({a, b, c}) == 3
    assert sorted(queue_ids(daemon)) == sorted([a, b, c])


def test_clean_stop_keeps_everything(daemon):
    ids = [daemon.send("bob@acme.example") for _ in range(3)]
    before = queue(daemon)
    daemon.stop()
    daemon.start()
    assert queue(daemon) == before
    assert sorted(queue_ids(daemon)) == sorted(ids)
    assert re.search(r"ready.*\b3 messages", daemon.log_since_start()), daemon.log_since_start()


def _held_in_list(d, qid):
    text = d.kickq("list").stdout
    return (qid + "!") in text


def test_message_hold_survives_restart(daemon):
    qid = daemon.send("bob@acme.example")
    other = daemon.send("bob@acme.example")
    daemon.kickq("hold", qid)
    assert _held_in_list(daemon, qid)
    assert not _held_in_list(daemon, other)
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert msgs[qid]["held"] is True
    assert msgs[qid]["recipients"][0]["status"] == "held"
    assert msgs[other]["held"] is False
    daemon.stop()
    daemon.start()
    assert _held_in_list(daemon, qid)
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert msgs[qid]["held"] is True
    assert msgs[other]["held"] is False
    # release is durable too, even across kill -9
    daemon.kickq("release", qid)
    assert not _held_in_list(daemon, qid)
    daemon.kill9()
    daemon.start()
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert msgs[qid]["held"] is False
    assert msgs[qid]["recipients"][0]["status"] == "queued"


def test_hold_then_kill9(daemon):
    qid = daemon.send("bob@acme.example")
    daemon.kickq("hold", qid)
    daemon.kill9()
    daemon.start()
    assert queue(daemon)[0]["held"] is True


def test_customer_hold_survives_restart_and_covers_new_mail(daemon):
    old = daemon.send("bob@acme.example")
    beta = daemon.send("bob@beta.example")
    daemon.kickq("hold", "acme")
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert msgs[old]["held"] is True
    assert msgs[beta]["held"] is False
    new = daemon.send("sales@acme.co.uk")
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert msgs[new]["held"] is True
    assert msgs[new]["recipients"][0]["status"] == "held"
    daemon.stop()
    daemon.start()
    newer = daemon.send("bob@acme.example")
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert msgs[old]["held"] and msgs[new]["held"] and msgs[newer]["held"]
    assert msgs[beta]["held"] is False
    summ = {s["customer"]: s for s in daemon.kickq_json("summary")}
    assert summ["acme"]["held"] is True
    assert summ["beta"]["held"] is False
    daemon.kickq("release", "acme")
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert not any(m["held"] for m in msgs.values()), msgs
    after = daemon.send("bob@acme.example")
    daemon.kill9()
    daemon.start()
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert not any(m["held"] for m in msgs.values()), msgs
    assert after in msgs


def test_mixed_message_partly_held(daemon):
    """A customer hold covers only that customer's recipients of a message."""
    qid = daemon.send(["bob@acme.example", "bob@beta.example"])
    daemon.kickq("hold", "beta")
    m = queue(daemon)[0]
    assert m["queue_id"] == qid
    assert m["held"] is False
    st = {r["customer"]: r["status"] for r in m["recipients"]}
    assert st == {"acme": "queued", "beta": "held"}
    text = daemon.kickq("list").stdout
    assert qid + "!" not in text
    assert "(held)" in text


def test_domain_hold(daemon):
    a = daemon.send("bob@acme.example")
    b = daemon.send("bob@acme.co.uk")
    daemon.kickq("hold", "acme.co.uk")
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert msgs[a]["held"] is False
    assert msgs[b]["held"] is True
    daemon.stop()
    daemon.start()
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert msgs[a]["held"] is False
    assert msgs[b]["held"] is True
    daemon.kickq("release", "acme.co.uk")
    assert not any(m["held"] for m in queue(daemon))


def test_delete_is_durable(daemon):
    keep = daemon.send("bob@acme.example")
    gone = daemon.send("bob@acme.example")
    gone2 = daemon.send("bob@beta.example")
    daemon.kickq("delete", gone, gone2)
    assert queue_ids(daemon) == [keep]
    assert daemon.kickq("show", gone, check=False).returncode == 1
    daemon.stop()
    daemon.start()
    assert queue_ids(daemon) == [keep]
    daemon.kill9()
    daemon.start()
    assert queue_ids(daemon) == [keep]


def test_delete_with_an_unknown_id_deletes_nothing(daemon):
    a = daemon.send("bob@acme.example")
    r = daemon.kickq("delete", a, "ZZZZZZZZZZZZZ", check=False)
    assert r.returncode == 1
    assert r.stderr.strip()
    assert queue_ids(daemon) == [a]


def test_disk_full_is_452_and_nothing_listed(make_daemon):
    d = make_daemon(env={"KICKMAIL_TEST_FAIL_WRITES": "28:1"}).start()
    with Raw(d.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        assert code(c.cmd("RCPT TO:<bob@acme.example>")) == 250
        assert code(c.cmd("DATA")) == 354
        c.send(message(subject="first") + ".\r\n")
        r = c.reply(timeout=20)
        assert r.startswith("452 4.3.1"), r
        assert queue(d) == []
        # the next message in the same session is fine
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        assert code(c.cmd("RCPT TO:<bob@acme.example>")) == 250
        assert code(c.cmd("DATA")) == 354
        c.send(message(subject="second") + ".\r\n")
        qid = queued_id(c.reply(timeout=20))
    assert queue_ids(d) == [qid]
    assert "Subject: second" in d.kickq("show", qid).stdout
    # and neither the failed one nor a half record comes back after a restart
    d.kill9()
    d.start()
    assert queue_ids(d) == [qid]


def test_io_error_is_451(make_daemon):
    d = make_daemon(env={"KICKMAIL_TEST_FAIL_WRITES": "5:1"}).start()
    with Raw(d.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        assert code(c.cmd("RCPT TO:<bob@acme.example>")) == 250
        assert code(c.cmd("DATA")) == 354
        c.send(message() + ".\r\n")
        r = c.reply(timeout=20)
        assert r.startswith("451 4.3.0") or r.startswith("452"), r
    assert queue(d) == []
    qid = d.send("bob@acme.example")
    assert queue_ids(d) == [qid]


def records_end(seg):
    """Where the records of a journal segment end: after the last trailer
    ("KMJE" and the payload length); a spare segment has zeros after it."""
    with open(seg, "rb") as f:
        data = f.read()
    i = data.rfind(b"KMJE")
    assert i >= 0, "no record in %s" % seg
    return i + 8


def test_garbage_in_journal_is_survived(daemon):
    """A torn write at the end of the journal (as a crash leaves it) is
    dropped at start; acknowledged mail before it is kept."""
    qid = daemon.send("bob@acme.example")
    daemon.kill9()
    jdir = os.path.join(daemon.spool, "journal")
    files = sorted(os.listdir(jdir))
    assert files, "no journal segment in %s" % jdir
    with open(os.path.join(jdir, files[-1]), "ab") as f:
        f.write(b"KM\x01garbage that is not a complete record" * 3)
    daemon.start()
    assert queue_ids(daemon) == [qid]
    assert os.listdir(os.path.join(daemon.spool, "corrupt")), "torn record not set aside"
    new = daemon.send("bob@acme.example")
    daemon.kill9()
    daemon.start()
    assert sorted(queue_ids(daemon)) == sorted([qid, new])


def test_torn_last_record_is_dropped_not_delivered_half(daemon):
    """A crash in the middle of writing a record: the half record is not
    taken as a message; the ones before it are intact."""
    jdir = os.path.join(daemon.spool, "journal")
    a = daemon.send("bob@acme.example", body=message(subject="first"))
    seg = os.path.join(jdir, sorted(os.listdir(jdir))[-1])
    size_a = records_end(seg)
    b = daemon.send("bob@acme.example", body=message(subject="second", body="b" * 4000 + "\r\n"))
    assert a != b
    daemon.kill9()
    size_b = records_end(seg)
    assert size_b > size_a + 4000, (size_a, size_b)
    with open(seg, "r+b") as f:
        f.truncate(size_a + (size_b - size_a) // 2)
    daemon.start()
    assert queue_ids(daemon) == [a]
    assert "Subject: first" in daemon.kickq("show", a).stdout
    c = daemon.send("bob@acme.example")
    daemon.stop()
    daemon.start()
    assert sorted(queue_ids(daemon)) == sorted([a, c])


def test_sigterm_during_a_session_loses_nothing(daemon):
    c = Raw(daemon.port)
    try:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        assert code(c.cmd("RCPT TO:<bob@acme.example>")) == 250
        daemon.proc.terminate()
        r = c.reply(timeout=20)
        assert r is None or r.startswith("421"), r
        rc = daemon.proc.wait(timeout=20)
        assert rc == 0
    finally:
        c.close()
    daemon.proc = None
    daemon.logf.close()
    daemon.start()
    assert queue(daemon) == []


# ---- deferral reasons are journal state (STATE records) ----

REC_MSG, REC_STATE, REC_DONE = 1, 2, 3


def qid_num(qid):
    """A queue ID's number (the IDs are base 32, digits then A-V)."""
    return int(qid, 32)


def journal_records(spool):
    """(type, id, metadata) of every record of the journal, oldest first
    (format: include/spool/spool.h; a spare segment's zero tail ends the walk)."""
    out = []
    jdir = os.path.join(spool, "journal")
    for name in sorted(n for n in os.listdir(jdir) if n.endswith(".seg")):
        with open(os.path.join(jdir, name), "rb") as f:
            data = f.read()
        off = 0
        while off + 32 <= len(data) and data[off:off + 4] == b"KMJ1":
            typ = data[off + 5]
            plen, mlen, rid = struct.unpack_from("<IIQ", data, off + 8)
            out.append((typ, rid, data[off + 32:off + 32 + mlen]))
            off += 32 + plen + 8
    return out


def state_reasons(meta):
    """[(status, reason bytes)] of a STATE record's metadata."""
    n, = struct.unpack_from("<H", meta, 1)
    pos, out = 3, []
    for _ in range(n):
        st = meta[pos]
        ln, = struct.unpack_from("<H", meta, pos + 1)
        out.append((st, meta[pos + 3:pos + 3 + ln]))
        pos += 3 + ln
    return out


def states_of(d, qid):
    n = qid_num(qid)
    return [state_reasons(m) for t, i, m in journal_records(d.spool)
            if t == REC_STATE and i == n]


def deferral_daemon(make_daemon, mta, retry="1h"):
    """acme delivered to the MTA at link up; one attempt per retry."""
    conf = customer_conf("acme", ["acme.example"], port=mta.port, retry_min=retry,
                         retry_max=retry)
    return make_daemon(customers=conf).start()


def wait_deferred(d, qid, addr="bob@acme.example", reason=None):
    def ok():
        st = status_of(d, qid)
        return (st and st[addr][0] == "deferred" and
                (reason is None or reason in (st[addr][1] or "")) and st)
    return wait_for(ok, what="%s of %s deferred (now %r)" % (addr, qid, status_of(d, qid)))


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_deferral_reason_survives_restart(make_daemon, mta, how):
    """A 451 leaves the recipient deferred with the reply as reason; after a
    clean stop or kill -9 it is still deferred with the same reason (it came
    back queued, with no reason, before deferrals were journalled).  A later
    delivery ends it for good."""
    mta.mail_reply = "451 4.7.1 greylisted, come back later"
    d = deferral_daemon(make_daemon, mta)
    d.kickq("link", "up", "acme", MTA_HOST)
    qid = d.send("bob@acme.example")
    wait_deferred(d, qid, reason="greylisted")
    d.kickq("link", "down", "acme")         # nothing is retried after the restart
    later = d.send("sales@acme.example")    # waits for the link: queued, no reason
    before = queue(d)
    st = {m["queue_id"]: m["recipients"][0] for m in before}
    assert st[qid]["status"] == "deferred"
    assert st[qid]["reason"] == "451 4.7.1 greylisted, come back later", st
    assert st[later]["status"] == "queued" and st[later]["reason"] is None, st
    if how == "kill9":
        # the 250 of `later` came after the batch holding the deferral was
        # synced (one writer, batches in order)
        d.kill9()
    else:
        d.stop()
    d.start()
    assert queue(d) == before
    text = d.kickq("list").stdout
    assert "(451 4.7.1 greylisted, come back later)" in text, text
    # delivered at last: gone, and it stays gone
    mta.accept_all()
    d.kickq("link", "up", "acme", MTA_HOST)
    mta.wait_messages(2)
    wait_for(lambda: queue(d) == [], what="an empty queue (have %r)" % queue(d))
    d.kill9()
    d.start()
    assert queue(d) == []


def test_same_reason_again_is_not_written_again(make_daemon, mta):
    """Retries that meet the same reply do not append a STATE each: the
    journal gets one per change of reason."""
    mta.mail_reply = "451 4.3.0 try later"
    d = deferral_daemon(make_daemon, mta, retry="1s")
    d.kickq("link", "up", "acme", MTA_HOST)
    qid = d.send("bob@acme.example")
    wait_deferred(d, qid, reason="try later")
    wait_for(lambda: len([c for c in mta.commands if c[0] == "MAIL"]) >= 3, timeout=15,
             what="three attempts")
    wait_deferred(d, qid, reason="try later")
    assert states_of(d, qid) == [[(0, b"451 4.3.0 try later")]]
    mta.mail_reply = "451 4.3.0 still busy"
    wait_deferred(d, qid, reason="still busy")
    wait_for(lambda: len(states_of(d, qid)) == 2, what="a second STATE record")
    assert states_of(d, qid)[1] == [(0, b"451 4.3.0 still busy")]


def test_long_reason_is_capped_in_memory_and_journal(make_daemon, mta):
    """A peer's reply can be 2 KB (more when multi-line): the reason kept,
    listed and journalled is at most 512 bytes, the same before and after a
    restart."""
    mta.mail_reply = "451 4.3.0 " + "too long " * 200
    d = deferral_daemon(make_daemon, mta)
    d.kickq("link", "up", "acme", MTA_HOST)
    qid = d.send("bob@acme.example")
    st = wait_deferred(d, qid, reason="451 4.3.0 too long")
    reason = st["bob@acme.example"][1]
    assert len(reason) <= 512 and reason.endswith("..."), (len(reason), reason)
    d.kickq("link", "down", "acme")
    wait_for(lambda: states_of(d, qid), what="the STATE record")
    assert states_of(d, qid) == [[(0, reason.encode())]]
    d.kill9()
    d.start()
    assert status_of(d, qid)["bob@acme.example"] == ("deferred", reason)


def test_sigterm_mid_flush_records_only_the_mail_in_flight(make_daemon, mta):
    """SIGTERM during a flush: the message in flight is deferred ("mail
    system shutting down") and that is journalled; the mail the flush had
    not reached keeps its state, so a stop in the middle of a large flush
    does not write a STATE record for each message left."""
    mta.gate_at = 0                         # every DATA waits for the gate
    conf = customer_conf("acme", ["acme.example"], port=mta.port, connections=1,
                         retry_min="1h", retry_max="1h")
    d = make_daemon(customers=conf).start()
    ids = [d.send("bob@acme.example") for _ in range(6)]
    d.kickq("link", "up", "acme", MTA_HOST)
    wait_for(lambda: mta.blocked == 1, what="a message in flight")
    d.stop()
    states = {qid: states_of(d, qid) for qid in ids}
    recorded = [qid for qid in ids if states[qid]]
    assert recorded == [ids[0]], states
    assert states[ids[0]] == [[(0, b"mail system shutting down")]], states


def record(typ, rid, meta, body=b""):
    """One journal record, version 1 (include/spool/spool.h)."""
    payload = meta + body
    hdr = b"KMJ1" + bytes([1, typ, 0, 0]) + struct.pack(
        "<IIQI", len(payload), len(meta), rid, zlib.crc32(payload))
    hdr += struct.pack("<I", zlib.crc32(hdr))
    return hdr + payload + b"KMJE" + struct.pack("<I", len(payload))


def msg_meta(arrival, sender, rcpts):
    m = struct.pack("<qH", arrival, len(sender)) + sender + struct.pack("<H", len(rcpts))
    return m + b"".join(b"\0" + struct.pack("<H", len(r)) + r for r in rcpts)


def state_meta(flags, rstates):
    m = bytes([flags]) + struct.pack("<H", len(rstates))
    return m + b"".join(bytes([st]) + struct.pack("<H", len(r)) + r for st, r in rstates)


def qid_str(n):
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUV"
    return "".join(alphabet[(n >> (5 * i)) & 31] for i in range(12, -1, -1))


def test_journal_of_an_older_version_recovers(make_daemon):
    """A journal as earlier versions wrote it (MSG and STATE records; a
    deferral was never journalled, a reason never cut): a message without a
    STATE comes back queued; a STATE's reason with line ends and 700 bytes
    comes back deferred, cleaned and cut to 512 bytes, the delivered
    recipient beside it still delivered."""
    d = make_daemon()
    os.makedirs(os.path.join(d.spool, "journal"))
    now = int(time.time())
    a, b = now * 10**6, now * 10**6 + 1
    body = message().encode()
    recs = [
        record(REC_MSG, a, msg_meta(now, b"alice@sender.example",
                                    [b"bob@acme.example", b"sales@acme.example"]), body),
        record(REC_MSG, b, msg_meta(now, b"", [b"bob@beta.example"]), body),
        record(REC_STATE, a, state_meta(0, [(0, b"451-first\r\n451  " + b"y" * 700),
                                            (1, b"")])),
    ]
    with open(os.path.join(d.spool, "journal", "0000000001.seg"), "wb") as f:
        f.write(b"".join(recs))
    d.start()
    assert qid_num(qid_str(a)) == a
    st = {m["queue_id"]: {r["address"]: (r["status"], r["reason"]) for r in m["recipients"]}
          for m in queue(d)}
    assert st[qid_str(b)] == {"bob@beta.example": ("queued", None)}, st
    status, reason = st[qid_str(a)]["bob@acme.example"]
    assert status == "deferred" and "sales@acme.example" not in st[qid_str(a)], st
    assert reason == "451-first 451 " + "y" * (512 - 17) + "...", reason
    assert not os.listdir(os.path.join(d.spool, "corrupt"))


SLOW_SYNC_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

/* fdatasync() takes 600 ms while the file named by KM_TEST_SLOW_SYNC exists:
 * a journal batch then stays in flight long enough for a test to queue
 * another record behind it. */
int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    const char *flag = getenv("KM_TEST_SLOW_SYNC");
    if (flag && access(flag, F_OK) == 0)
        usleep(600000);
    return real(fd);
}
"""


@pytest.fixture
def slow_sync_shim(tmp_path):
    return build_shim(tmp_path, "slowsync", SLOW_SYNC_SHIM)


def test_hold_survives_a_deferral_written_while_it_syncs(make_daemon, mta, slow_sync_shim,
                                                         tmp_path):
    """kickq hold ID writes a STATE record; a deferral of the same message
    queued while that record syncs writes another one behind it.  Each STATE
    is the message's whole state, so the second must carry the hold too: it
    carried the hold of before (none), and the hold vanished from memory and
    from the journal once both were synced."""
    mta.mail_reply = "451 4.3.0 try later"
    flag = str(tmp_path / "slow")
    conf = customer_conf("acme", ["acme.example"], port=mta.port, retry_min="1h",
                         retry_max="1h")
    d = make_daemon(customers=conf)
    d.start(env=shim_env(slow_sync_shim, KM_TEST_SLOW_SYNC=flag))
    qid = d.send("bob@acme.example")
    open(flag, "w").close()
    hold = subprocess.Popen([KICKQ, "-c", d.conf, "hold", qid],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(0.1)                 # the hold's STATE is in its slow sync
    assert d.kickq("link", "up", "acme", MTA_HOST).returncode == 0
    # the hold is not in force until synced: the attempt goes out and meets 451
    wait_for(lambda: any(c[0] == "MAIL" for c in mta.commands), what="the attempt")
    assert hold.wait(timeout=10) == 0, hold.stdout.read()
    wait_for(lambda: "try later" in (queue(d)[0]["recipients"][0]["reason"] or ""),
             what="the deferral's reason")
    os.unlink(flag)
    time.sleep(0.3)                 # the deferral's STATE has synced too
    assert [(m["held"], m["recipients"][0]["status"]) for m in queue(d)] == [(True, "held")]
    d.kill9()
    d.start()
    m, = queue(d)
    assert (m["held"], m["recipients"][0]["status"]) == (True, "held"), m
    assert "try later" in m["recipients"][0]["reason"], m
