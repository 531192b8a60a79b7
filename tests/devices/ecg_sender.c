/*
 * A minimal ECG device for the monitor's wire format v2, in C with libzmq only.
 *
 * Build:  gcc -O2 -Wall -Wextra -o ecg_sender ecg_sender.c -lzmq
 * Run:    ./ecg_sender ENDPOINT STREAM BOOT1 BOOT2 SAMPLES
 *
 * It connects a PUSH socket to ENDPOINT (e.g. tcp://127.0.0.1:5555) and plays
 * one device that:
 * whose lead MLII plays the file SAMPLES (raw little-endian int16 at 200 units
 * per mV, sample i of the device's clock being file sample i modulo its
 * length) and lead V5 half of it, and that:
 *   1. runs as boot BOOT1 for 20 frames of 1 s (360 Hz, 2 leads MLII and V5,
 *      16-bit samples, 200 units per mV), but loses frames 10 and 11 (a gap);
 *   2. reboots: boot BOOT2, seq and start from 0 again, 15 frames;
 *   3. ends the stream: an end-of-stream message whose start is the next
 *      sample index (the last frame's start + n).
 *
 * Every message is a ZeroMQ multipart message: part 0 the JSON header (built
 * with snprintf, no JSON library needed: the stream id and lead names hold no
 * characters JSON escapes), part 1 (data only) the samples, n rows of one
 * little-endian int16 per lead.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define FS 360
#define LEADS 2
#define GAIN 200.0 /* units per mV */
#define MAX_HEADER 4096

static int valid_id(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) return 0;
    }
    return 1;
}

static int16_t *signal_raw; /* the recorded lead, raw units */
static size_t signal_len;

static int load_signal(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return -1;
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (bytes < 2) {
        fclose(f);
        return -1;
    }
    signal_len = (size_t)bytes / 2;
    signal_raw = malloc(signal_len * sizeof(int16_t));
    size_t got = signal_raw == NULL ? 0 : fread(signal_raw, sizeof(int16_t), signal_len, f);
    fclose(f);
    return got == signal_len ? 0 : -1;
}

static int send_part(void *sock, const void *data, size_t len, int more) {
    if (zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0) < 0) {
        fprintf(stderr, "zmq_send: %s\n", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* One data frame of n samples from device index start. */
static int send_data(void *sock, const char *stream, uint64_t boot, uint64_t seq, uint64_t start, int n) {
    char header[MAX_HEADER];
    int len = snprintf(header, sizeof header,
                       "{\"v\":2,\"type\":\"data\",\"stream\":\"%s\",\"boot\":%llu,\"seq\":%llu,"
                       "\"start\":%llu,\"fs\":%d,\"n\":%d,\"channels\":[\"MLII\",\"V5\"],"
                       "\"units\":[\"mV\",\"mV\"],\"gain\":[%.1f,%.1f],\"baseline\":[0,0],"
                       "\"dtype\":\"<i2\"}",
                       stream, (unsigned long long)boot, (unsigned long long)seq,
                       (unsigned long long)start, FS, n, GAIN, GAIN);
    if (len < 0 || len >= MAX_HEADER) return -1;
    int16_t *payload = malloc(sizeof(int16_t) * (size_t)n * LEADS);
    if (payload == NULL) return -1;
    for (int k = 0; k < n; k++) {
        int16_t raw = signal_raw[(start + (uint64_t)k) % signal_len];
        /* row-major: all leads of sample k; int16 little-endian (the host order on x86 and ARM) */
        payload[k * LEADS + 0] = raw;
        payload[k * LEADS + 1] = (int16_t)(raw / 2);
    }
    int rc = send_part(sock, header, (size_t)len, 1);
    if (rc == 0) rc = send_part(sock, payload, sizeof(int16_t) * (size_t)n * LEADS, 0);
    free(payload);
    return rc;
}

/* End of stream: start is the next sample index, seq continues the data frames'. */
static int send_eos(void *sock, const char *stream, uint64_t boot, uint64_t seq, uint64_t next_start) {
    char header[MAX_HEADER];
    int len = snprintf(header, sizeof header,
                       "{\"v\":2,\"type\":\"eos\",\"stream\":\"%s\",\"boot\":%llu,\"seq\":%llu,\"start\":%llu}",
                       stream, (unsigned long long)boot, (unsigned long long)seq,
                       (unsigned long long)next_start);
    if (len < 0 || len >= MAX_HEADER) return -1;
    return send_part(sock, header, (size_t)len, 0);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s ENDPOINT STREAM BOOT1 BOOT2 SAMPLES\n", argv[0]);
        return 2;
    }
    if (load_signal(argv[5]) != 0) {
        fprintf(stderr, "cannot read int16 samples from %s\n", argv[5]);
        return 2;
    }
    const char *endpoint = argv[1], *stream = argv[2];
    uint64_t boots[2] = {strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10)};
    if (!valid_id(stream) || boots[0] == boots[1]) {
        fprintf(stderr, "bad stream id or equal boot ids\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_PUSH);
    int linger = 10000; /* at exit, wait up to 10 s for queued messages to leave */
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(sock, endpoint) != 0) {
        fprintf(stderr, "zmq_connect %s: %s\n", endpoint, zmq_strerror(errno));
        return 1;
    }
    int rc = 0;
    /* boot 1: 20 frames of 1 s, frames 10 and 11 lost on the way (a 2 s gap) */
    for (uint64_t seq = 0; seq < 20 && rc == 0; seq++) {
        if (seq == 10 || seq == 11) continue;
        rc = send_data(sock, stream, boots[0], seq, seq * FS, FS);
    }
    /* reboot: a new boot id, seq and sample index from 0 */
    uint64_t seq = 0;
    for (; seq < 15 && rc == 0; seq++) rc = send_data(sock, stream, boots[1], seq, seq * FS, FS);
    if (rc == 0) rc = send_eos(sock, stream, boots[1], seq, seq * FS);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    free(signal_raw);
    return rc == 0 ? 0 : 1;
}
