"""Keywords Asterisk 20 accepts, per file and section type, for ``hotline lint-asterisk``.

Why tables: Asterisk ignores (queues.conf: "Unknown keyword", a WARNING) or drops
(pjsip.conf: "Could not find option suitable for category", the whole object refused)
a misspelt or retired keyword only when it loads, often on a production box. A table
per section type lets the linter say so before that, with the reason.

* ``PJSIP``: generated from Asterisk 20.20.1's own documentation of res_pjsip and its
  modules (``data/documentation/core-en_US.xml``, the ``configInfo`` of pjsip.conf,
  ``configObject`` -> ``configOption`` names). To refresh for another release::

      python3 -c "import xml.etree.ElementTree as E;[print(o.get('name'), ' '.join(sorted(
      c.get('name') for c in o.iter('configOption')))) for f in E.parse('core-en_US.xml')
      .iter('configFile') if f.get('name')=='pjsip.conf' for o in f.iter('configObject')]"

* ``QUEUE``: app_queue parses queue sections by hand (``queue_set_param``), so there is
  no documentation to generate from; this list was loaded into the real Asterisk 20.20.1
  (../shared/asterisk) and every keyword here was accepted without "Unknown keyword".
* ``OBSOLETE``: keywords an older Asterisk knew and 20 ignores or refuses, with what to
  do instead; reported with that reason rather than as a mere typo.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


PJSIP: dict[str, frozenset[str]] = {
    "asterisk-publication": _words(
        "device_state device_state_filter devicestate_publish mailbox_state "
        "mailbox_state_filter mailboxstate_publish type "
    ),
    "outbound-publish": _words(
        "event expiration from_uri max_auth_attempts multi_user outbound_auth outbound_proxy "
        "server_uri to_uri transport type "
    ),
    "registration": _words(
        "auth_rejection_permanent client_uri contact_header_params contact_user endpoint "
        "expiration fatal_retry_interval forbidden_retry_interval line max_random_initial_delay "
        "max_retries outbound_auth outbound_proxy retry_interval security_mechanisms "
        "security_negotiation server_uri support_outbound support_path transport type "
    ),
    "phoneprov": _words("* MAC PROFILE endpoint type "),
    "identify": _words("endpoint match match_header match_request_uri srv_lookups type "),
    "resource_list": _words(
        "event full_state list_item notification_batch_interval resource_display_name type "
    ),
    "inbound-publication": _words("endpoint type "),
    "acl": _words("acl contact_acl contact_deny contact_permit deny permit type "),
    "endpoint": _words(
        "100rel accept_multiple_sdp_answers accountcode acl aggregate_mwi allow allow_overlap "
        "allow_subscribe allow_transfer allow_unauthenticated_options aors asymmetric_rtp_codec "
        "auth bind_rtp_to_media_address bundle call_group callerid callerid_privacy "
        "callerid_tag codec_prefs_incoming_answer codec_prefs_incoming_offer "
        "codec_prefs_outgoing_answer codec_prefs_outgoing_offer connected_line_method "
        "contact_acl contact_deny contact_permit contact_user context cos_audio cos_video deny "
        "device_state_busy_at direct_media direct_media_glare_mitigation direct_media_method "
        "disable_direct_media_on_nat disallow dtls_auto_generate_cert dtls_ca_file dtls_ca_path "
        "dtls_cert_file dtls_cipher dtls_fingerprint dtls_private_key dtls_rekey dtls_setup "
        "dtls_verify dtmf_mode fax_detect fax_detect_timeout follow_early_media_fork "
        "follow_redirect_methods force_avp force_rport from_domain from_user g726_non_standard "
        "geoloc_incoming_call_profile geoloc_outgoing_call_profile ice_support identify_by "
        "ignore_183_without_sdp inband_progress incoming_call_offer_pref incoming_mwi_mailbox "
        "language mailboxes max_audio_streams max_video_streams media_address media_encryption "
        "media_encryption_optimistic media_use_received_transport message_context "
        "moh_passthrough moh_suggest mwi_from_user mwi_subscribe_replaces_unsolicited "
        "named_call_group named_pickup_group notify_early_inuse_ringing one_touch_recording "
        "outbound_auth outbound_proxy outgoing_call_offer_pref overlap_context permit "
        "pickup_group preferred_codec_only record_off_feature record_on_feature redirect_method "
        "refer_blind_progress rewrite_contact rpid_immediate rtcp_mux rtp_engine rtp_ipv6 "
        "rtp_keepalive rtp_port_end rtp_port_start rtp_symmetric rtp_timeout rtp_timeout_hold "
        "sdp_owner sdp_session security_mechanisms security_negotiation send_aoc "
        "send_connected_line send_diversion send_history_info send_pai send_rpid set_var "
        "srtp_tag_32 stir_shaken stir_shaken_profile sub_min_expiry subscribe_context "
        "suppress_moh_on_sendonly suppress_q850_reason_headers t38_bind_udptl_to_media_address "
        "t38_udptl t38_udptl_ec t38_udptl_ipv6 t38_udptl_maxdatagram t38_udptl_nat tenantid "
        "timers timers_min_se timers_sess_expires tone_zone tos_audio tos_video transport "
        "trust_connected_line trust_id_inbound trust_id_outbound type use_avpf use_ptime "
        "user_eq_phone voicemail_extension webrtc "
    ),
    "auth": _words(
        "auth_type md5_cred nonce_lifetime oauth_clientid oauth_secret password password_digest "
        "realm refresh_token supported_algorithms_uac supported_algorithms_uas type username "
    ),
    "domain_alias": _words("domain type "),
    "transport": _words(
        "allow_reload allow_wildcard_certs async_operations bind ca_list_file ca_list_path "
        "cert_file cipher cos domain external_media_address external_signaling_address "
        "external_signaling_port local_net method password priv_key_file protocol "
        "require_client_cert symmetric_transport tcp_keepalive_enable tcp_keepalive_idle_time "
        "tcp_keepalive_interval_time tcp_keepalive_probe_count tos type verify_client "
        "verify_server websocket_write_timeout "
    ),
    "contact": _words(
        "authenticate_qualify call_id endpoint expiration_time outbound_proxy path "
        "prune_on_boot qualify_2xx_only qualify_frequency qualify_timeout reg_server type uri "
        "user_agent via_addr via_port "
    ),
    "aor": _words(
        "authenticate_qualify contact default_expiration mailboxes max_contacts "
        "maximum_expiration minimum_expiration outbound_proxy qualify_2xx_only "
        "qualify_frequency qualify_timeout remove_existing remove_unavailable support_path type "
        "voicemail_extension "
    ),
    "system": _words(
        "accept_multiple_sdp_answers compact_headers disable_rport disable_tcp_switch "
        "follow_early_media_fork taskpool_auto_increment taskpool_idle_timeout "
        "taskpool_initial_size taskpool_max_size taskpool_minimum_size "
        "threadpool_auto_increment threadpool_idle_timeout threadpool_initial_size "
        "threadpool_max_size timer_b timer_t1 type "
    ),
    "global": _words(
        "all_codecs_on_empty_reinvite allow_sending_180_after_183 "
        "contact_expiration_check_interval debug default_auth_algorithms_uac "
        "default_auth_algorithms_uas default_from_user default_outbound_endpoint default_realm "
        "default_voicemail_extension disable_multi_domain endpoint_identifier_order "
        "ignore_uri_user_options keep_alive_interval max_forwards max_initial_qualify_time "
        "mwi_disable_initial_unsolicited mwi_tps_queue_high mwi_tps_queue_low norefersub "
        "regcontext send_contact_status_on_update_registration taskprocessor_overload_trigger "
        "type unidentified_request_count unidentified_request_period "
        "unidentified_request_prune_interval use_callerid_contact user_agent "
    ),
}

QUEUE = _words(
    "musicclass music musiconhold announce context timeout ringinuse setinterfacevar "
    "setqueuevar setqueueentryvar monitor-format membergosub queue-youarenext "
    "queue-thereare queue-callswaiting queue-quantity1 queue-quantity2 queue-holdtime "
    "queue-minutes queue-minute queue-seconds queue-thankyou queue-callerannounce "
    "queue-reporthold announce-frequency min-announce-frequency announce-round-seconds "
    "announce-holdtime announce-position announce-position-limit announce-position-only-up "
    "announce-to-first-user periodic-announce periodic-announce-frequency "
    "periodic-announce-startdelay relative-periodic-announce random-periodic-announce retry "
    "wrapuptime penaltymemberslimit autofill autopause autopausedelay autopausebusy "
    "autopauseunavail maxlen servicelevel strategy joinempty leavewhenempty reportholdtime "
    "memberdelay weight timeoutrestart defaultrule timeoutpriority log-restricted-caller-id "
    "member"
)

# queues.conf [general]: Asterisk-wide queue settings, not a queue.
QUEUE_GENERAL = _words(
    "persistentmembers autofill monitor-type updatecdr keepstats shared_lastcall "
    "negative_penalty_invokes_limits log_membername_as_agent log_unpause_on_reason_change "
    "force_longest_waiting_caller"
)

# manager.conf: [general] and one section per AMI user (manager.c, __init_manager).
MANAGER_GENERAL = _words(
    "enabled webenabled port bindaddr tlsenable tlsbindaddr tlscertfile tlsprivatekey "
    "tlscipher tlscafile tlscapath tlsclientmethod tlsdontverifyserver displayconnects "
    "timestampevents channelvars debug httptimeout authtimeout authlimit allowmultiplelogin "
    "disabledevents"
)
MANAGER_USER = _words(
    "secret deny permit acl read write writetimeout displayconnects allowmultiplelogin "
    "eventfilter setvar channelvars"
)

# (file, keyword) -> why it is wrong now and what to do instead.
OBSOLETE: dict[tuple[str, str], str] = {
    ("queues.conf", "eventwhencalled"): "removed in Asterisk 12: queue events "
    "(AgentCalled, AgentConnect) are always sent; delete the line",
    ("queues.conf", "eventmemberstatus"): "removed in Asterisk 12: QueueMemberStatus is "
    "always sent; delete the line",
    ("queues.conf", "monitor-type"): "Monitor() is gone (Asterisk 21); a queue records "
    "with MixMonitor, set nothing",
    ("queues.conf", "membermacro"): "Macro() is gone (Asterisk 21): use membergosub",
    ("queues.conf", "updatecdr"): "a [general] setting, ignored in a queue",
    ("queues.conf", "shared_lastcall"): "a [general] setting, ignored in a queue",
    ("queues.conf", "force-longest-waiting-caller"): "spelt force_longest_waiting_caller, "
    "and only in [general]",
    ("pjsip.conf", "nat"): "chan_sip's keyword: use rtp_symmetric, force_rport and "
    "rewrite_contact on the endpoint",
    ("pjsip.conf", "qualify"): "chan_sip's keyword: use qualify_frequency on the aor",
    ("pjsip.conf", "host"): "chan_sip's keyword: use contact on the aor",
    ("pjsip.conf", "secret"): "chan_sip's keyword: use password in a type=auth section",
}
