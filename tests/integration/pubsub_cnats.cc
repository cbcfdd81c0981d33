// Debian's libnats (nats.c) against a NATS server: pubsub_cnats <port|host:port> <mode>.
// mode "main": pub/sub with a wildcard, auto-unsubscribe after N, queue groups over two
// connections, request/reply, no-responders, headers; "token:<t>": auth with a token, and a
// wrong token is refused. Prints "ok <mode>" and exits 0, or the failed check and exits 1.
// Every wait is bounded (NextMsg and Request timeouts).
#include <nats/nats.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#define CHECK(c)                                                                        \
  do {                                                                                  \
    if (!(c)) {                                                                         \
      printf("FAIL %s:%d: %s (%s)\n", __FILE__, __LINE__, #c, nats_GetLastError(NULL)); \
      exit(1);                                                                          \
    }                                                                                   \
  } while (0)

static natsConnection* connect_to(const char* url, const char* token) {
  natsOptions* o = NULL;
  natsConnection* nc = NULL;
  CHECK(natsOptions_Create(&o) == NATS_OK);
  CHECK(natsOptions_SetURL(o, url) == NATS_OK);
  if (token) CHECK(natsOptions_SetToken(o, token) == NATS_OK);
  natsStatus s = natsConnection_Connect(&nc, o);
  natsOptions_Destroy(o);
  return s == NATS_OK ? nc : NULL;
}

// Replies "re:<data>" to every request (a responder on its own connection).
static void respond(natsConnection* nc, natsSubscription* sub, natsMsg* m, void* closure) {
  (void)sub;
  (void)closure;
  char out[64];
  snprintf(out, sizeof out, "re:%.*s", natsMsg_GetDataLength(m), natsMsg_GetData(m));
  natsConnection_PublishString(nc, natsMsg_GetReply(m), out);
  natsMsg_Destroy(m);
}

static int drain_count(natsSubscription* s) {
  int n = 0;
  natsMsg* m = NULL;
  while (natsSubscription_NextMsg(&m, s, 300) == NATS_OK) {
    natsMsg_Destroy(m);
    ++n;
  }
  return n;
}

static void run_main(const char* url) {
  natsConnection* a = connect_to(url, NULL);
  natsConnection* b = connect_to(url, NULL);
  CHECK(a && b);
  natsSubscription *sub = NULL, *q1 = NULL, *q2 = NULL, *svc = NULL, *hs = NULL;
  natsMsg* m = NULL;

  // Wildcard, auto-unsubscribe after 2.
  CHECK(natsConnection_SubscribeSync(&sub, a, "c.*") == NATS_OK);
  CHECK(natsSubscription_AutoUnsubscribe(sub, 2) == NATS_OK);
  CHECK(natsConnection_Flush(a) == NATS_OK);
  for (int i = 0; i < 3; ++i) {
    char subj[16];
    snprintf(subj, sizeof subj, "c.%d", i);
    CHECK(natsConnection_PublishString(b, subj, "x") == NATS_OK);
  }
  CHECK(natsConnection_Flush(b) == NATS_OK);
  CHECK(natsSubscription_NextMsg(&m, sub, 2000) == NATS_OK);
  CHECK(strcmp(natsMsg_GetSubject(m), "c.0") == 0);
  natsMsg_Destroy(m);
  CHECK(natsSubscription_NextMsg(&m, sub, 2000) == NATS_OK);
  CHECK(strcmp(natsMsg_GetSubject(m), "c.1") == 0);
  natsMsg_Destroy(m);
  CHECK(natsSubscription_NextMsg(&m, sub, 300) != NATS_OK);  // gone after 2
  natsSubscription_Destroy(sub);

  // Queue group over two connections: each message once.
  CHECK(natsConnection_QueueSubscribeSync(&q1, a, "cq", "g") == NATS_OK);
  CHECK(natsConnection_QueueSubscribeSync(&q2, b, "cq", "g") == NATS_OK);
  CHECK(natsConnection_Flush(a) == NATS_OK && natsConnection_Flush(b) == NATS_OK);
  for (int i = 0; i < 100; ++i) CHECK(natsConnection_PublishString(b, "cq", "m") == NATS_OK);
  CHECK(natsConnection_Flush(b) == NATS_OK);
  const int n1 = drain_count(q1), n2 = drain_count(q2);
  CHECK(n1 + n2 == 100);
  CHECK(n1 > 0 && n2 > 0);
  natsSubscription_Destroy(q1);
  natsSubscription_Destroy(q2);

  // Request/reply, then no responders.
  CHECK(natsConnection_Subscribe(&svc, a, "csvc", respond, NULL) == NATS_OK);
  CHECK(natsConnection_Flush(a) == NATS_OK);
  CHECK(natsConnection_RequestString(&m, b, "csvc", "hi", 2000) == NATS_OK);
  CHECK(natsMsg_GetDataLength(m) == 5 && memcmp(natsMsg_GetData(m), "re:hi", 5) == 0);
  natsMsg_Destroy(m);
  CHECK(natsConnection_RequestString(&m, b, "nobody.home", "hi", 2000) == NATS_NO_RESPONDERS);
  natsSubscription_Destroy(svc);

  // Headers.
  CHECK(natsConnection_SubscribeSync(&hs, a, "ch") == NATS_OK);
  CHECK(natsConnection_Flush(a) == NATS_OK);
  natsMsg* out = NULL;
  CHECK(natsMsg_Create(&out, "ch", NULL, "body", 4) == NATS_OK);
  CHECK(natsMsgHeader_Set(out, "X-Test", "v1") == NATS_OK);
  CHECK(natsConnection_PublishMsg(b, out) == NATS_OK);
  natsMsg_Destroy(out);
  CHECK(natsSubscription_NextMsg(&m, hs, 2000) == NATS_OK);
  const char* v = NULL;
  CHECK(natsMsgHeader_Get(m, "X-Test", &v) == NATS_OK && strcmp(v, "v1") == 0);
  CHECK(natsMsg_GetDataLength(m) == 4);
  natsMsg_Destroy(m);
  natsSubscription_Destroy(hs);

  natsConnection_Destroy(a);
  natsConnection_Destroy(b);
}

static void run_token(const char* url, const char* token) {
  natsConnection* nc = connect_to(url, token);
  CHECK(nc != NULL);
  natsSubscription* s = NULL;
  natsMsg* m = NULL;
  CHECK(natsConnection_SubscribeSync(&s, nc, "t") == NATS_OK);
  CHECK(natsConnection_Flush(nc) == NATS_OK);
  CHECK(natsConnection_PublishString(nc, "t", "ok") == NATS_OK);
  CHECK(natsSubscription_NextMsg(&m, s, 2000) == NATS_OK);
  natsMsg_Destroy(m);
  natsSubscription_Destroy(s);
  natsConnection_Destroy(nc);
  char wrong[128];
  snprintf(wrong, sizeof wrong, "%sx", token);
  CHECK(connect_to(url, wrong) == NULL);
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  char url[96];  // argv[1]: a port on 127.0.0.1, or host:port
  snprintf(url, sizeof url, "nats://%s%s", strchr(argv[1], ':') ? "" : "127.0.0.1:", argv[1]);
  if (strncmp(argv[2], "token:", 6) == 0)
    run_token(url, argv[2] + 6);
  else
    run_main(url);
  printf("ok %s\n", argv[2]);
  nats_Close();
  return 0;
}
