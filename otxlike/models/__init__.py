"""The ``nn.Module`` classes otxlike registers as ``otxlike.<Name>`` (backbone wrappers, necks) and
the registration of users' own backbones and heads (:mod:`otxlike.models.custom`)."""
