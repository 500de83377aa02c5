/*
 * The broker baseline for `make bench`: a raw rabbitmq-c publisher, no Emporium code.
 *
 * Publishes COUNT persistent messages of SIZE bytes to a durable quorum queue through the
 * default exchange, with publisher confirms and at most WINDOW unconfirmed at a time, and
 * prints one JSON line: {"messages":N,"seconds":S,"per_second":R,"window":W,"size":B}.
 * The queue is deleted afterwards. Exit 1 with a message on any broker error or nack.
 *
 *   amqp_publish HOST PORT USER PASSWORD VHOST QUEUE COUNT SIZE WINDOW
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

int main(int argc, char **argv) {
  if (argc != 10) {
    fprintf(stderr, "usage: amqp_publish HOST PORT USER PASSWORD VHOST QUEUE COUNT SIZE WINDOW\n");
    return 64;
  }
  const char *host = argv[1], *user = argv[3], *password = argv[4], *vhost = argv[5], *queue = argv[6];
  int port = atoi(argv[2]);
  long count = atol(argv[7]), size = atol(argv[8]), window = atol(argv[9]);
  if (port <= 0 || count <= 0 || size <= 0 || window <= 0) {
    fprintf(stderr, "amqp_publish: PORT, COUNT, SIZE and WINDOW must be positive numbers\n");
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
  amqp_confirm_select(conn, 1);
  die_on_reply(amqp_get_rpc_reply(conn), "confirm.select");

  char *payload = malloc(size);
  memset(payload, 'x', size);
  amqp_bytes_t body = {.len = size, .bytes = payload};
  amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG,
                                   .delivery_mode = 2, .content_type = amqp_cstring_bytes("application/octet-stream")};

  double start = now_seconds();
  uint64_t published = 0, confirmed = 0, low = 0;
  unsigned char *acked = calloc(count + 2, 1);
  while (confirmed < (uint64_t)count) {
    while (published < (uint64_t)count && published - confirmed < (uint64_t)window) {
      int status = amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &props, body);
      if (status != AMQP_STATUS_OK) {
        fprintf(stderr, "amqp_publish: publish: %s\n", amqp_error_string2(status));
        return 1;
      }
      published++;
    }
    confirmed += wait_confirm(conn, acked, &low);
  }
  double seconds = now_seconds() - start;

  amqp_queue_delete(conn, 1, amqp_cstring_bytes(queue), 0, 0);
  die_on_reply(amqp_get_rpc_reply(conn), "queue.delete");
  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
  free(payload);
  free(acked);
  printf("{\"messages\":%ld,\"seconds\":%.3f,\"per_second\":%.1f,\"window\":%ld,\"size\":%ld}\n", count, seconds, count / seconds, window, size);
  return 0;
}
