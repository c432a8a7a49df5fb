/*
 * Fuzz entry point for everything a daemon decodes from the network: the
 * frame header, every message payload, and the cluster map.
 *
 * Input layout: byte 0 selects the decoder (header, map, or a message type
 * by index), the rest is the bytes to decode.  Built with libFuzzer when
 * meson is configured with -Dfuzzing=true (clang); otherwise replay.c
 * feeds it the stored corpus in the normal test run.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint16_t types[] = {
	MX_MSG_MON_GET_MAP, MX_MSG_MON_MAP, MX_MSG_MON_OSD_BOOT, MX_MSG_MON_OSD_BOOT_REPLY,
	MX_MSG_MON_COMMAND, MX_MSG_MON_COMMAND_REPLY, MX_MSG_OSD_OP, MX_MSG_OSD_OP_REPLY,
	MX_MSG_OSD_REPOP, MX_MSG_OSD_REPOP_REPLY, MX_MSG_OSD_LIST, MX_MSG_OSD_LIST_REPLY,
	MX_MSG_ERROR_REPLY, MX_MSG_PING, MX_MSG_MON_OSD_FAILURE, MX_MSG_MON_OSD_BEACON,
	MX_MSG_PG_QUERY, MX_MSG_PG_NOTIFY, MX_MSG_PG_ACTIVATE, MX_MSG_PG_ACTIVATE_REPLY,
	MX_MSG_PG_PUSH, MX_MSG_PG_PUSH_REPLY, MX_MSG_PG_PULL, MX_MSG_PG_REMOVE,
	MX_MSG_PG_REMOVE_REPLY, MX_MSG_PG_SCAN, MX_MSG_PG_SCRUB, MX_MSG_PG_SCRUB_REPLY,
	MX_MSG_PG_SCRUB_MAP, MX_MSG_PG_SCRUB_MAP_REPLY, MX_MSG_MON_PG_STATS,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t sel;
	uint8_t *copy;

	if (size < 1)
		return 0;
	sel = data[0];
	data++;
	size--;
	if (size > MX_MSG_MAX_PAYLOAD)
		return 0;
	/* Decoders get a private copy, exactly sized, as a daemon's buffer. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (sel == 0xff) {
		struct mx_msg_hdr h;

		if (size >= MX_MSG_HDR_LEN && mx_msg_hdr_decode(copy, &h) == 0 &&
		    h.len <= size - MX_MSG_HDR_LEN)
			(void)mx_msg_payload_check(&h, copy + MX_MSG_HDR_LEN);
	} else if (sel == 0xfe) {
		struct mx_map *m = NULL;

		if (mx_map_decode(copy, size, &m) == 0) {
			struct mx_wbuf w;
			struct mx_map *m2 = NULL;

			/* What decodes must re-encode to something that decodes
			 * to the same map. */
			mx_wbuf_init(&w);
			mx_map_encode(m, &w);
			if (w.err || mx_map_decode(w.data, w.len, &m2) != 0 ||
			    m2->epoch != m->epoch || m2->n_pools != m->n_pools ||
			    m2->max_osd != m->max_osd)
				abort();
			mx_map_free(m2);
			mx_wbuf_free(&w);
			mx_map_free(m);
		}
	} else {
		(void)mx_msg_decode_any(types[sel % (sizeof(types) / sizeof(types[0]))], copy,
					(uint32_t)size);
	}
	free(copy);
	return 0;
}
