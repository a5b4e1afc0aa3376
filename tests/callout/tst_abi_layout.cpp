// The structs of callout_abi.h as clang laid them out for the BPF target
// (BTF of the compiled object) against the host C++ compiler's layout:
// size of every struct, offset and size of every member, and no member
// missing on either side. A struct absent from the BTF fails: the callout
// and user space would then share it unchecked.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <QFile>
#include <QRegularExpression>
#include <QtTest>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "callout_abi.h"

namespace {

struct Member {
    const char* name;
    size_t offset;
    size_t size;
};

struct Layout {
    const char* name;
    size_t size;
    std::vector<Member> members;
};

#define ABI_MEMBER(S, m) Member{#m, offsetof(S, m), sizeof(S::m)}
#define ABI_STRUCT(S, ...) Layout{#S, sizeof(S), {__VA_ARGS__}}

// Every member, in declaration order; the test also fails when the BTF has one this list lacks.
const std::vector<Layout>& layouts()
{
    static const std::vector<Layout> all = {
        ABI_STRUCT(callout_hop, ABI_MEMBER(callout_hop, redirector_id), ABI_MEMBER(callout_hop, state),
                   ABI_MEMBER(callout_hop, flags), ABI_MEMBER(callout_hop, reserved)),
        ABI_STRUCT(callout_records, ABI_MEMBER(callout_records, flow_id), ABI_MEMBER(callout_records, hop_count),
                   ABI_MEMBER(callout_records, flags), ABI_MEMBER(callout_records, reserved),
                   ABI_MEMBER(callout_records, reserved2), ABI_MEMBER(callout_records, hops)),
        ABI_STRUCT(callout_context, ABI_MEMBER(callout_context, family), ABI_MEMBER(callout_context, port),
                   ABI_MEMBER(callout_context, reserved), ABI_MEMBER(callout_context, addr),
                   ABI_MEMBER(callout_context, pid), ABI_MEMBER(callout_context, uid),
                   ABI_MEMBER(callout_context, comm), ABI_MEMBER(callout_context, cgroup_id),
                   ABI_MEMBER(callout_context, rule_id), ABI_MEMBER(callout_context, redirector_id),
                   ABI_MEMBER(callout_context, time_boot_ns), ABI_MEMBER(callout_context, data_len),
                   ABI_MEMBER(callout_context, pad), ABI_MEMBER(callout_context, data)),
        ABI_STRUCT(callout_sock, ABI_MEMBER(callout_sock, role), ABI_MEMBER(callout_sock, redirector_slot),
                   ABI_MEMBER(callout_sock, records), ABI_MEMBER(callout_sock, context)),
        ABI_STRUCT(callout_cidr, ABI_MEMBER(callout_cidr, family), ABI_MEMBER(callout_cidr, prefix_len),
                   ABI_MEMBER(callout_cidr, reserved), ABI_MEMBER(callout_cidr, addr)),
        ABI_STRUCT(callout_port_range, ABI_MEMBER(callout_port_range, first), ABI_MEMBER(callout_port_range, last)),
        ABI_STRUCT(callout_rule, ABI_MEMBER(callout_rule, id), ABI_MEMBER(callout_rule, enabled),
                   ABI_MEMBER(callout_rule, action), ABI_MEMBER(callout_rule, protocol),
                   ABI_MEMBER(callout_rule, match), ABI_MEMBER(callout_rule, redirector_slot),
                   ABI_MEMBER(callout_rule, cidr_count), ABI_MEMBER(callout_rule, port_count),
                   ABI_MEMBER(callout_rule, uid), ABI_MEMBER(callout_rule, cgroup_id),
                   ABI_MEMBER(callout_rule, expires_boot_ns), ABI_MEMBER(callout_rule, comm),
                   ABI_MEMBER(callout_rule, cidrs), ABI_MEMBER(callout_rule, ports),
                   ABI_MEMBER(callout_rule, idle_timeout_s), ABI_MEMBER(callout_rule, reserved2)),
        ABI_STRUCT(callout_redirector, ABI_MEMBER(callout_redirector, id), ABI_MEMBER(callout_redirector, flags),
                   ABI_MEMBER(callout_redirector, owner_tgid), ABI_MEMBER(callout_redirector, udp_port4),
                   ABI_MEMBER(callout_redirector, udp_port6),
                   ABI_MEMBER(callout_redirector, netns_cookie), ABI_MEMBER(callout_redirector, addr4),
                   ABI_MEMBER(callout_redirector, port4), ABI_MEMBER(callout_redirector, port6),
                   ABI_MEMBER(callout_redirector, addr6), ABI_MEMBER(callout_redirector, data_len),
                   ABI_MEMBER(callout_redirector, pad), ABI_MEMBER(callout_redirector, data)),
        ABI_STRUCT(callout_config, ABI_MEMBER(callout_config, active_table), ABI_MEMBER(callout_config, rule_count),
                   ABI_MEMBER(callout_config, reserved)),
        ABI_STRUCT(callout_handoff_key, ABI_MEMBER(callout_handoff_key, netns_cookie),
                   ABI_MEMBER(callout_handoff_key, family), ABI_MEMBER(callout_handoff_key, app_port),
                   ABI_MEMBER(callout_handoff_key, proxy_port), ABI_MEMBER(callout_handoff_key, app_addr),
                   ABI_MEMBER(callout_handoff_key, proxy_addr)),
        ABI_STRUCT(callout_udp_sock, ABI_MEMBER(callout_udp_sock, flow_ns), ABI_MEMBER(callout_udp_sock, idle_ns),
                   ABI_MEMBER(callout_udp_sock, flow_dst), ABI_MEMBER(callout_udp_sock, flow_port),
                   ABI_MEMBER(callout_udp_sock, in_hops), ABI_MEMBER(callout_udp_sock, generation),
                   ABI_MEMBER(callout_udp_sock, proxy_addr), ABI_MEMBER(callout_udp_sock, proxy_port),
                   ABI_MEMBER(callout_udp_sock, flow_family), ABI_MEMBER(callout_udp_sock, other_family),
                   ABI_MEMBER(callout_udp_sock, other_dst), ABI_MEMBER(callout_udp_sock, other_port),
                   ABI_MEMBER(callout_udp_sock, other_verdict), ABI_MEMBER(callout_udp_sock, handed),
                   ABI_MEMBER(callout_udp_sock, reserved2), ABI_MEMBER(callout_udp_sock, other_ns),
                   ABI_MEMBER(callout_udp_sock, other_idle_ns)),
        ABI_STRUCT(callout_last_inbound, ABI_MEMBER(callout_last_inbound, time_boot_ns),
                   ABI_MEMBER(callout_last_inbound, records)),
        ABI_STRUCT(callout_event, ABI_MEMBER(callout_event, time_boot_ns), ABI_MEMBER(callout_event, cookie),
                   ABI_MEMBER(callout_event, flow_id), ABI_MEMBER(callout_event, cgroup_id),
                   ABI_MEMBER(callout_event, pid), ABI_MEMBER(callout_event, uid), ABI_MEMBER(callout_event, comm),
                   ABI_MEMBER(callout_event, family), ABI_MEMBER(callout_event, orig_port),
                   ABI_MEMBER(callout_event, new_port), ABI_MEMBER(callout_event, verdict),
                   ABI_MEMBER(callout_event, state), ABI_MEMBER(callout_event, orig_addr),
                   ABI_MEMBER(callout_event, new_addr), ABI_MEMBER(callout_event, redirector_id),
                   ABI_MEMBER(callout_event, rule_id), ABI_MEMBER(callout_event, hop_count),
                   ABI_MEMBER(callout_event, flags), ABI_MEMBER(callout_event, records_size),
                   ABI_MEMBER(callout_event, context_size), ABI_MEMBER(callout_event, protocol),
                   ABI_MEMBER(callout_event, reserved),
                   ABI_MEMBER(callout_event, hops), ABI_MEMBER(callout_event, chain_states),
                   ABI_MEMBER(callout_event, bytes_acked), ABI_MEMBER(callout_event, bytes_received)),
    };
    return all;
}

struct BtfDeleter {
    void operator()(btf* b) const { btf__free(b); }
};

}  // namespace

class TestAbiLayout : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void everyAbiStructIsListed();
    void structLayout_data();
    void structLayout();

private:
    std::unique_ptr<btf, BtfDeleter> btf_;
};

void TestAbiLayout::initTestCase()
{
    btf_.reset(btf__parse_elf(CALLOUT_BPF_OBJECT, nullptr));
    QVERIFY2(btf_, qPrintable(QString("no BTF in %1: %2").arg(CALLOUT_BPF_OBJECT, qt_error_string(errno))));
}

// Guards the table itself: a struct added to callout_abi.h must get a row here.
void TestAbiLayout::everyAbiStructIsListed()
{
    QFile header(CALLOUT_ABI_HEADER);
    QVERIFY2(header.open(QIODevice::ReadOnly | QIODevice::Text), qPrintable(header.errorString()));
    QStringList declared;
    static const QRegularExpression definition("^struct (\\w+) \\{", QRegularExpression::MultilineOption);
    for (auto it = definition.globalMatch(QString::fromUtf8(header.readAll())); it.hasNext();)
        declared << it.next().captured(1);
    QStringList listed;
    for (const Layout& l : layouts())
        listed << l.name;
    QCOMPARE(listed, declared);
    QCOMPARE(listed.size(), 13);
}

void TestAbiLayout::structLayout_data()
{
    QTest::addColumn<int>("index");
    for (size_t i = 0; i < layouts().size(); ++i)
        QTest::newRow(layouts()[i].name) << int(i);
}

void TestAbiLayout::structLayout()
{
    QFETCH(int, index);
    const Layout& layout = layouts()[size_t(index)];
    btf* b = btf_.get();

    int id = btf__find_by_name_kind(b, layout.name, BTF_KIND_STRUCT);
    QVERIFY2(id > 0, qPrintable(QString("struct %1 is not in the BTF of %2 (callout.bpf.c never emits it), "
                                        "so its layout is not checked against the callout")
                                    .arg(layout.name, CALLOUT_BPF_OBJECT)));
    const btf_type* t = btf__type_by_id(b, __u32(id));
    QVERIFY(t);
    QCOMPARE(size_t(t->size), layout.size);

    const btf_member* m = btf_members(t);
    QStringList btfNames;
    for (unsigned short i = 0; i < btf_vlen(t); ++i, ++m) {
        QString name = btf__name_by_offset(b, m->name_off);
        btfNames << name;
        QVERIFY2(btf_member_bitfield_size(t, i) == 0, qPrintable(name + " is a bit-field"));
        const Member* mine = nullptr;
        for (const Member& candidate : layout.members)
            if (name == candidate.name)
                mine = &candidate;
        QVERIFY2(mine, qPrintable(QString("%1.%2 is in the BTF but not in the test table").arg(layout.name, name)));
        const size_t bpfOffset = btf_member_bit_offset(t, i) / 8;
        const long long bpfSize = btf__resolve_size(b, m->type);
        QVERIFY2(bpfOffset == mine->offset && bpfSize == static_cast<long long>(mine->size),
                 qPrintable(QString("%1.%2: offset %3 size %4 for BPF, offset %5 size %6 in C++")
                                .arg(layout.name, name)
                                .arg(bpfOffset)
                                .arg(bpfSize)
                                .arg(mine->offset)
                                .arg(mine->size)));
    }
    QStringList cppNames;
    for (const Member& member : layout.members)
        cppNames << member.name;
    QCOMPARE(btfNames, cppNames);  // same members, same order
}

QTEST_APPLESS_MAIN(TestAbiLayout)
#include "tst_abi_layout.moc"
