/*
 * The broker baselines for `make bench`: a raw rabbitmq-c publisher and consumer, no Emporium
 * code. Run once per mode so that the bench can account each one's CPU on its own.
 *
 * publish: declares a durable quorum queue and publishes COUNT persistent messages of SIZE
 *   bytes to it through the default exchange, with publisher confirms and at most WINDOW
 *   unconfirmed at a time. The queue is kept for `consume`.
 * consume: consumes COUNT messages from that queue with a prefetch of WINDOW and acknowledges
 *   them with one `multiple` ack per ACK_EVERY messages (the way a worker acknowledges a
 *   batch), then deletes the queue.
 *
 * Prints one JSON line: {"messages":N,"seconds":S,"per_second":R,"window":W,"size":B} (size is
 * ACK_EVERY for consume). Exit 1 with a message on any broker error or nack.
 *
 *   amqp_publish publish HOST PORT USER PASSWORD VHOST QUEUE COUNT SIZE WINDOW
 *   amqp_publish consume HOST PORT USER PASSWORD VHOST QUEUE COUNT ACK_EVERY WINDOW
 */
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static void die_on_reply(amqp_rpc_reply_t reply, const char *what) {
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return;
  if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
    fprintf(stderr, "amqp_publish: %s: %s\n", what, amqp_error_string2(reply.library_error));
  } else {
    fprintf(stderr, "amqp_publish: %s: the broker refused (reply type %d)\n", what, reply.reply_type);
  }
  exit(1);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Reads frames until a confirm arrives and marks what it confirms (one tag, or every tag up
 * to it when `multiple`); returns how many tags it newly confirmed. */
static uint64_t wait_confirm(amqp_connection_state_t conn, unsigned char *acked, uint64_t *low) {
  for (;;) {
    amqp_frame_t frame;
    int status = amqp_simple_wait_frame(conn, &frame);
    if (status != AMQP_STATUS_OK) {
      fprintf(stderr, "amqp_publish: waiting for confirms: %s\n", amqp_error_string2(status));
      exit(1);
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      amqp_basic_ack_t *ack = frame.payload.method.decoded;
      uint64_t newly = 0;
      uint64_t from = ack->multiple ? *low + 1 : ack->delivery_tag;
      for (uint64_t tag = from; tag <= ack->delivery_tag; tag++) {
        if (!acked[tag]) { acked[tag] = 1; newly++; }
      }
      while (acked[*low + 1]) (*low)++;
      return newly;
    }
    if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
      fprintf(stderr, "amqp_publish: the broker nacked a message\n");
      exit(1);
    }
    if (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD || frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
      fprintf(stderr, "amqp_publish: the broker closed the channel\n");
      exit(1);
    }
  }
}

/* Consumes `count` messages, acknowledging every `ack_every`-th with `multiple` (and the
 * last one), the way a worker acknowledges a committed batch. */
static void consume(amqp_connection_state_t conn, const char *queue, long count, long ack_every, long prefetch) {
  amqp_basic_qos(conn, 1, 0, (uint16_t)prefetch, 0);
  die_on_reply(amqp_get_rpc_reply(conn), "basic.qos");
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  die_on_reply(amqp_get_rpc_reply(conn), "basic.consume");
  for (long received = 1; received <= count; received++) {
    amqp_envelope_t envelope;
    amqp_maybe_release_buffers(conn);
    /* A deadline on every wait: a queue holding fewer than COUNT messages ends the run with
     * "request timed out" instead of hanging the bench. */
    struct timeval deadline = {.tv_sec = 30, .tv_usec = 0};
    die_on_reply(amqp_consume_message(conn, &envelope, &deadline, 0), "consume");
    if (received % ack_every == 0 || received == count) {
      if (amqp_basic_ack(conn, 1, envelope.delivery_tag, 1) != AMQP_STATUS_OK) {
        fprintf(stderr, "amqp_publish: basic.ack failed\n");
        exit(1);
      }
    }
    amqp_destroy_envelope(&envelope);
  }
}

/* Publishes `count` persistent messages of `size` bytes with confirms, at most `window`
 * unconfirmed at a time. */
static void publish(amqp_connection_state_t conn, const char *queue, long count, long size, long window) {
  amqp_confirm_select(conn, 1);
  die_on_reply(amqp_get_rpc_reply(conn), "confirm.select");
  char *payload = malloc(size);
  memset(payload, 'x', size);
  amqp_bytes_t body = {.len = size, .bytes = payload};
  amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG,
                                   .delivery_mode = 2, .content_type = amqp_cstring_bytes("application/octet-stream")};
  uint64_t published = 0, confirmed = 0, low = 0;
  unsigned char *acked = calloc(count + 2, 1);
  while (confirmed < (uint64_t)count) {
    while (published < (uint64_t)count && published - confirmed < (uint64_t)window) {
      int status = amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &props, body);
      if (status != AMQP_STATUS_OK) {
        fprintf(stderr, "amqp_publish: publish: %s\n", amqp_error_string2(status));
        exit(1);
      }
      published++;
    }
    confirmed += wait_confirm(conn, acked, &low);
  }
  free(payload);
  free(acked);
}

int main(int argc, char **argv) {
  if (argc != 11 || (strcmp(argv[1], "publish") != 0 && strcmp(argv[1], "consume") != 0)) {
    fprintf(stderr, "usage: amqp_publish publish HOST PORT USER PASSWORD VHOST QUEUE COUNT SIZE WINDOW\n"
                    "       amqp_publish consume HOST PORT USER PASSWORD VHOST QUEUE COUNT ACK_EVERY WINDOW\n");
    return 64;
  }
  int publishing = strcmp(argv[1], "publish") == 0;
  const char *host = argv[2], *user = argv[4], *password = argv[5], *vhost = argv[6], *queue = argv[7];
  int port = atoi(argv[3]);
  long count = atol(argv[8]), size = atol(argv[9]), window = atol(argv[10]);
  if (port <= 0 || count <= 0 || size <= 0 || window <= 0 || (!publishing && window > 65535)) {
    fprintf(stderr, "amqp_publish: PORT, COUNT, SIZE (or ACK_EVERY) and WINDOW must be positive numbers (WINDOW at most 65535 to consume)\n");
    return 64;
  }

  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t *socket = amqp_tcp_socket_new(conn);
  if (!socket || amqp_socket_open(socket, host, port) != AMQP_STATUS_OK) {
    fprintf(stderr, "amqp_publish: cannot connect to %s:%d\n", host, port);
    return 1;
  }
  die_on_reply(amqp_login(conn, vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, user, password), "login");
  amqp_channel_open(conn, 1);
  die_on_reply(amqp_get_rpc_reply(conn), "channel.open");

  amqp_table_entry_t quorum = {.key = amqp_cstring_bytes("x-queue-type"),
                               .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("quorum")}};
  amqp_table_t arguments = {.num_entries = 1, .entries = &quorum};
  amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, arguments);
  die_on_reply(amqp_get_rpc_reply(conn), "queue.declare");

  double start = now_seconds();
  if (publishing) {
    publish(conn, queue, count, size, window);
  } else {
    consume(conn, queue, count, size, window);
  }
  double seconds = now_seconds() - start;

  if (!publishing) {
    /* A fresh channel: the consuming one still has its consumer. */
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    amqp_channel_open(conn, 2);
    die_on_reply(amqp_get_rpc_reply(conn), "channel.open");
    amqp_queue_delete(conn, 2, amqp_cstring_bytes(queue), 0, 0);
    die_on_reply(amqp_get_rpc_reply(conn), "queue.delete");
    amqp_channel_close(conn, 2, AMQP_REPLY_SUCCESS);
  } else {
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  }
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
  printf("{\"messages\":%ld,\"seconds\":%.3f,\"per_second\":%.1f,\"window\":%ld,\"size\":%ld}\n", count, seconds, count / seconds, window, size);
  return 0;
}
