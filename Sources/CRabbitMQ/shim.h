#ifndef EMPORIUM_CRABBITMQ_SHIM_H
#define EMPORIUM_CRABBITMQ_SHIM_H

// librabbitmq 0.12+ installs its headers under rabbitmq-c/; 0.11 (Debian 12) at the top level.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/framing.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <amqp_framing.h>
#endif

/// amqp_login is variadic, which Swift cannot call: this fixes the PLAIN mechanism's arguments.
static inline amqp_rpc_reply_t emporium_amqp_login_plain(amqp_connection_state_t state,
                                                         const char *vhost, int channel_max,
                                                         int frame_max, int heartbeat,
                                                         const char *user, const char *password) {
    return amqp_login(state, vhost, channel_max, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN,
                      user, password);
}

/// amqp_login_with_properties is variadic too: PLAIN with client properties (the connection's
/// name and the capabilities, such as connection.blocked, that rabbitmq-c merges with its own).
static inline amqp_rpc_reply_t emporium_amqp_login_plain_properties(amqp_connection_state_t state,
                                                                    const char *vhost, int channel_max,
                                                                    int frame_max, int heartbeat,
                                                                    const amqp_table_t *properties,
                                                                    const char *user, const char *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

/// AMQP_EMPTY_BYTES / amqp_empty_table are macros or globals awkward from Swift.
static inline amqp_bytes_t emporium_amqp_bytes(const void *bytes, size_t len) {
    amqp_bytes_t b;
    b.len = len;
    b.bytes = (void *)bytes;
    return b;
}

#endif
