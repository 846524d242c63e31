"""The cloud clients: one per service, the retry and polling policies, credentials, endpoints,
the shared tea session, and the one boundary (``_transport``) where foreign exceptions become
aliasync's. May import only ``aliasync._exceptions`` and the SDKs.
"""
